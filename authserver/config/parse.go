package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Environment variables read by Parse and Load. The TTL variables count seconds; they
// and the SESSION_* variables keep the names of the origin framework, so existing
// deployments keep working.
const (
	EnvAuthCodeTTL           = "OAUTH_AUTH_CODE_TTL"
	EnvAccessTokenTTL        = "OAUTH_ACCESS_TOKEN_TTL"
	EnvRefreshTokenTTL       = "OAUTH_REFRESH_TOKEN_TTL"
	EnvClientRegistrationTTL = "OAUTH_CLIENT_REGISTRATION_TTL"
	EnvExternalTokenTTL      = "OAUTH_EXTERNAL_TOKEN_TTL"
	// EnvSessionProvider overrides store.type ("memory" or "redis").
	EnvSessionProvider = "SESSION_PROVIDER"
	// EnvSessionRedisURL overrides store.redis.url.
	EnvSessionRedisURL = "SESSION_REDIS_URL"
)

// Load reads the configuration file at path, then applies environment overrides read
// through getenv (nil means no overrides; pass os.Getenv in a main) and validates.
func Load(path string, getenv func(string) string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(data, getenv)
	if err != nil {
		return nil, fmt.Errorf("config %s:\n%w", path, err)
	}
	return c, nil
}

// Parse decodes a configuration file over the defaults, applies environment
// overrides read through getenv (nil means none), normalizes and validates it. The
// error lists every problem found, each naming its field path.
func Parse(data []byte, getenv func(string) string) (*Config, error) {
	c := Default()
	if err := decodeStrict(data, c); err != nil {
		return nil, err
	}
	if err := c.applyEnv(getenv); err != nil {
		return nil, err
	}
	c.Normalize()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Marshal encodes c as YAML that Parse accepts and decodes to the same Config. It does
// not validate: call Validate first to refuse a config the server would refuse.
func Marshal(c *Config) ([]byte, error) {
	return yaml.Marshal(c)
}

// envTTLs maps each TTL variable to the field it overrides.
var envTTLs = []struct {
	env, field string
	ptr        func(*Tokens) *Duration
}{
	{EnvAuthCodeTTL, "tokens.authorizationCodeTTL", func(t *Tokens) *Duration { return &t.AuthorizationCodeTTL }},
	{EnvAccessTokenTTL, "tokens.accessTokenTTL", func(t *Tokens) *Duration { return &t.AccessTokenTTL }},
	{EnvRefreshTokenTTL, "tokens.refreshTokenTTL", func(t *Tokens) *Duration { return &t.RefreshTokenTTL }},
	{EnvClientRegistrationTTL, "tokens.clientRegistrationTTL", func(t *Tokens) *Duration { return &t.ClientRegistrationTTL }},
	{EnvExternalTokenTTL, "tokens.externalTokenTTL", func(t *Tokens) *Duration { return &t.ExternalTokenTTL }},
}

// applyEnv applies the environment overrides. An empty variable counts as unset, as
// it does for the origin framework.
func (c *Config) applyEnv(getenv func(string) string) error {
	if getenv == nil {
		return nil
	}
	var errs []error
	for _, e := range envTTLs {
		v := strings.TrimSpace(getenv(e.env))
		if v == "" {
			continue
		}
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			errs = append(errs, fmt.Errorf("%s: %q is not a whole number of seconds", e.env, v))
			continue
		}
		if err != nil || secs > math.MaxInt64/int64(time.Second) || secs < math.MinInt64/int64(time.Second) {
			errs = append(errs, fmt.Errorf("%s: %q seconds is out of range", e.env, v))
			continue
		}
		*e.ptr(&c.Tokens) = Duration(time.Duration(secs) * time.Second)
		c.setEnvSource(e.field, e.env)
	}
	if v := strings.TrimSpace(getenv(EnvSessionProvider)); v != "" {
		c.Store.Type = StoreType(v)
		c.setEnvSource("store.type", EnvSessionProvider)
	}
	if v := strings.TrimSpace(getenv(EnvSessionRedisURL)); v != "" {
		if c.Store.Redis == nil {
			c.Store.Redis = &Redis{}
		}
		c.Store.Redis.URL = v
		c.setEnvSource("store.redis.url", EnvSessionRedisURL)
	}
	return errors.Join(errs...)
}

func (c *Config) setEnvSource(field, env string) {
	if c.envSources == nil {
		c.envSources = map[string]string{}
	}
	c.envSources[field] = env
}

// decodeStrict decodes YAML into v (a pointer to a struct). Unknown keys, keys whose
// case differs from the field's, values of the wrong type and duplicate keys are
// errors. encoding/json alone would match keys case-insensitively and stop at the
// first problem without a list index in its path; checkTree reports them all by path.
func decodeStrict(data []byte, v any) error {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return fmt.Errorf("invalid YAML: %w", err)
	}
	var tree any
	if err := json.Unmarshal(js, &tree); err != nil {
		return fmt.Errorf("invalid YAML: %w", err)
	}
	var errs []error
	checkTree(reflect.TypeOf(v).Elem(), tree, "", &errs)
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return &FieldError{Field: te.Field, Detail: fmt.Sprintf("expected %s, got %s", te.Type, te.Value)}
		}
		return fmt.Errorf("decode: %w", err)
	}
	return nil
}

var durationType = reflect.TypeFor[Duration]()

// checkTree walks a decoded JSON tree against the Go type it will be decoded into.
func checkTree(t reflect.Type, v any, path string, errs *[]error) {
	if v == nil { // null leaves the default in place, as encoding/json does
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	bad := func(want string) {
		detail := fmt.Sprintf("expected %s, got %s", want, jsonKind(v))
		if want == "a string" {
			detail += " (quote values such as 123, 1.5 or no, which YAML reads as numbers or booleans)"
		}
		*errs = append(*errs, &FieldError{Field: path, Detail: detail})
	}
	if t == durationType {
		s, ok := v.(string)
		if !ok {
			*errs = append(*errs, &FieldError{Field: path, Detail: errDurationType.Error()})
			return
		}
		if _, err := parseDuration(s); err != nil {
			*errs = append(*errs, &FieldError{Field: path, Detail: err.Error()})
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			bad("an object")
			return
		}
		fields := jsonFields(t)
		// Sorted so that error lists are the same from run to run.
		for _, key := range slices.Sorted(maps.Keys(obj)) {
			sub := joinPath(path, key)
			f, ok := fields[key]
			if !ok {
				detail := "unknown field"
				for name := range fields {
					if strings.EqualFold(name, key) {
						detail = fmt.Sprintf("unknown field (did you mean %q?)", name)
					}
				}
				*errs = append(*errs, &FieldError{Field: sub, Detail: detail})
				continue
			}
			checkTree(f.Type, obj[key], sub, errs)
		}
	case reflect.Slice:
		arr, ok := v.([]any)
		if !ok {
			bad("a list")
			return
		}
		for i, e := range arr {
			checkTree(t.Elem(), e, fmt.Sprintf("%s[%d]", path, i), errs)
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			bad("a string")
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			bad("true or false")
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		if f, ok := v.(float64); !ok || f != math.Trunc(f) {
			bad("a whole number")
		}
	}
}

func jsonKind(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// jsonFields maps the JSON names of t's exported fields to the fields.
func jsonFields(t reflect.Type) map[string]reflect.StructField {
	m := map[string]reflect.StructField{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = f
	}
	return m
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
