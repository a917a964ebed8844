package redis

import (
	"context"
	"errors"

	goredis "github.com/redis/go-redis/v9"
)

// Single commands and scripts go through go-redis's autopipelining when the Store made
// its client (New): under load, the GETs and scripts of concurrent requests leave in
// one write and come back in one read, so the server and Redis make a system call or
// two per batch instead of per command. That is most of what a round trip costs on a
// busy machine (docs/performance.md). A request still waits for its own commands, in
// order, and sees each one's own reply, so nothing else about an operation changes:
// a script is atomic as before, and a batch whose connection drops is retried as a
// lone command would be (the scripts recognise their own retry, see replayMarker).
// Alone, a command leaves at once: no waiting to fill a batch.
//
// A pipeline would not do: its commands must share one round trip even when nothing
// else is in flight, and the autopipeliner may send the first before the second
// arrives. So what needed one (ReadTokenRequest, SaveLogin) is one command instead,
// an MGET and a script, except on a Cluster, where their keys lie in two slots.

// asyncAutoPipeliner is the clients that can autopipeline: go-redis's standalone (and
// Sentinel-managed) and Cluster clients.
type asyncAutoPipeliner interface {
	AsyncAutoPipelineWithOptions(*goredis.AutoPipelineOptions) (*goredis.AutoPipeliner, error)
}

// autoPipelineOptions lets four batches of at most about 16 commands be in flight at
// once, not go-redis's one of 200. With one, Redis waits while the server reads a
// batch's replies and the server waits while Redis runs the next; and a request's
// reply waits for every script of its batch, so big batches of scripts (a refresh's
// rotation is ten Redis commands) keep every caller in them waiting the longest. Small
// batches with more in flight keep Redis, the server and the clients busy at once
// (A/B at 64 workers, three rounds: refreshes +10%, flows and introspection
// unchanged; two batches of 200 had given flows +12% and refreshes +15% over one;
// 3×12, 6×12, 4×32 and 8×16 did worse than 4×16, and a flush delay much worse).
// go-redis then no longer keeps commands in the order they were sent, which nothing
// here needs: a caller waits for each reply (send) before it sends the next command,
// and concurrent requests had no order to keep.
func autoPipelineOptions() *goredis.AutoPipelineOptions {
	return &goredis.AutoPipelineOptions{MaxConcurrentBatches: 4, MaxBatchSize: 16, Unordered: true}
}

// send runs one command and waits for it, or for ctx: autopipelined commands do not
// honour their context once queued, so the wait does. On an error of ctx the command
// may still be in flight, and must not be read.
func (s *Store) send(ctx context.Context, cmd goredis.Cmder) error {
	if s.ap == nil {
		return s.rdb.Process(ctx, cmd)
	}
	return s.ap.Submit(ctx, cmd).WaitContext(ctx)
}

// abandoned reports whether send gave up waiting on ctx, so that the command it sent
// is not to be read.
func abandoned(ctx context.Context, err error) bool {
	return err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err())
}

// str sends a command whose reply is a string (GET, GETDEL) and returns it answered.
func (s *Store) str(ctx context.Context, args ...any) *goredis.StringCmd {
	cmd := goredis.NewStringCmd(ctx, args...)
	if err := s.send(ctx, cmd); abandoned(ctx, err) {
		cmd = goredis.NewStringCmd(ctx, args...)
		cmd.SetErr(err)
	}
	return cmd
}

// status sends a command whose reply is a status (SET, DEL) and returns its error.
func (s *Store) status(ctx context.Context, args ...any) error {
	return s.send(ctx, goredis.NewCmd(ctx, args...))
}

// scripter runs Script.Run's EVALSHA, and its EVAL when Redis lost the script,
// through send; everything else of goredis.Scripter is the client's own.
type scripter struct {
	goredis.Scripter
	s *Store
}

func (x scripter) Eval(ctx context.Context, script string, keys []string, args ...any) *goredis.Cmd {
	return x.s.eval(ctx, "eval", script, keys, args)
}

func (x scripter) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *goredis.Cmd {
	return x.s.eval(ctx, "evalsha", sha1, keys, args)
}

func (s *Store) eval(ctx context.Context, name, payload string, keys []string, args []any) *goredis.Cmd {
	a := make([]any, 0, 3+len(keys)+len(args))
	a = append(a, name, payload, len(keys))
	for _, k := range keys {
		a = append(a, k)
	}
	a = append(a, args...)
	cmd := goredis.NewCmd(ctx, a...)
	if err := s.send(ctx, cmd); abandoned(ctx, err) {
		cmd = goredis.NewCmd(ctx, a...)
		cmd.SetErr(err)
	}
	return cmd
}
