package app

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"
)

// redisCounters count what the server sends Redis, so that the cost of each endpoint in
// round trips can be measured from outside the process (`make bench` reads them
// between requests) and watched in production:
//
//	mcpauth_redis_round_trips_total  a command sent alone, or a pipeline
//	mcpauth_redis_commands_total     commands sent, pipelined ones one by one
//
// Commands a Lua script runs inside Redis are not sent, so they are not counted here;
// Redis's own INFO commandstats has them. A script's fallback from EVALSHA to EVAL
// (Redis restarted and lost its script cache) counts as the two round trips it is.
type redisCounters struct {
	roundTrips prometheus.Counter
	commands   prometheus.Counter
}

func newRedisCounters(reg prometheus.Registerer, rdb goredis.UniversalClient) error {
	c := &redisCounters{
		roundTrips: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mcpauth_redis_round_trips_total",
			Help: "Round trips to Redis: commands sent alone and pipelines.",
		}),
		commands: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mcpauth_redis_commands_total",
			Help: "Commands sent to Redis, each command of a pipeline counted (not those Lua scripts run inside Redis).",
		}),
	}
	for _, col := range []prometheus.Collector{c.roundTrips, c.commands} {
		if err := reg.Register(col); err != nil {
			return err
		}
	}
	rdb.AddHook(c)
	return nil
}

func (c *redisCounters) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (c *redisCounters) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		c.roundTrips.Inc()
		c.commands.Inc()
		return next(ctx, cmd)
	}
}

func (c *redisCounters) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		c.roundTrips.Inc()
		c.commands.Add(float64(len(cmds)))
		return next(ctx, cmds)
	}
}
