package main

import (
	"fmt"
	"slices"
	"sync/atomic"
	"time"
)

// kind is one kind of request the generator sends, reported on its own.
type kind int

const (
	kRegister kind = iota
	kAuthorize
	kConsent
	kCallback
	kTokenCode
	kTokenRefresh
	kIntrospect
	kBaseline
	numKinds
)

var kindNames = [numKinds]string{"register", "authorize", "consent", "callback", "token(code)", "token(refresh)", "introspect", "baseline"}

// recorder is one worker's record of a phase: latencies of the requests that ended
// inside the measurement window, per kind, and errors. Workers never share one.
type recorder struct {
	window *window
	lat    [numKinds][]time.Duration
	errs   int
	// firstErr keeps one error message per worker, for the report.
	firstErr string
}

// window is the measurement window of a phase: requests that start before from are
// warm-up and are not recorded; workers stop sending at to.
type window struct {
	from, to time.Time
	// done counts recorded requests, for the progress line.
	done atomic.Int64
	errs atomic.Int64
}

// observe records a request that started at start; ok false counts an error.
func (r *recorder) observe(k kind, start time.Time, err error) {
	end := time.Now()
	if start.Before(r.window.from) || end.After(r.window.to) {
		if err != nil { // errors count whenever they happen
			r.fail(err)
		}
		return
	}
	if err != nil {
		r.fail(err)
		return
	}
	r.lat[k] = append(r.lat[k], end.Sub(start))
	r.window.done.Add(1)
}

func (r *recorder) fail(err error) {
	r.errs++
	r.window.errs.Add(1)
	if r.firstErr == "" {
		r.firstErr = err.Error()
	}
}

// summary is what a phase measured for one kind of request (or all of them).
type summary struct {
	Count int     `json:"count"`
	RPS   float64 `json:"rps"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
}

func summarize(lat []time.Duration, seconds float64) summary {
	if len(lat) == 0 {
		return summary{}
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		i := int(p * float64(len(lat)))
		if i >= len(lat) {
			i = len(lat) - 1
		}
		return float64(lat[i]) / float64(time.Millisecond)
	}
	return summary{Count: len(lat), RPS: float64(len(lat)) / seconds, P50: q(0.50), P99: q(0.99), P999: q(0.999)}
}

func (s summary) String() string {
	return fmt.Sprintf("%9.0f req/s  p50 %6.2f ms  p99 %6.2f ms  p99.9 %6.2f ms", s.RPS, s.P50, s.P99, s.P999)
}
