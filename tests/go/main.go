// A franz-go (kgo) client for the interoperability tests, driven by tests/clients/test_franz_go.py.
//
//	franz roundtrip BOOTSTRAP TOPIC GROUP N   idempotent produce, group consume and commit, resume after it
//	franz txn BOOTSTRAP TOPIC GROUP TXN_ID    committed, aborted and committed transactions; read_committed
//
// It prints one JSON object on stdout; the Python test makes the assertions.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func client(opts ...kgo.Opt) *kgo.Client {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		fail("new client: %v", err)
	}
	return cl
}

type consumed struct {
	Values    []string `json:"values"`
	Keys      []string `json:"keys"`
	Headers   []string `json:"headers"`
	Partition []int32  `json:"partitions"`
	Offsets   []int64  `json:"offsets"`
}

// consume polls a group member until it has want records (or the deadline), then commits them.
func consume(ctx context.Context, bootstrap, topic, group string, want int, committed bool) consumed {
	opts := []kgo.Opt{
		kgo.SeedBrokers(bootstrap),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
	}
	if committed {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl := client(opts...)
	defer cl.Close()
	var out consumed
	deadline := time.Now().Add(60 * time.Second)
	for len(out.Values) < want && time.Now().Before(deadline) {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fetches := cl.PollFetches(pctx)
		cancel()
		fetches.EachError(func(t string, p int32, err error) {
			if err != context.DeadlineExceeded {
				fail("fetch %s[%d]: %v", t, p, err)
			}
		})
		fetches.EachRecord(func(r *kgo.Record) {
			out.Values = append(out.Values, string(r.Value))
			out.Keys = append(out.Keys, string(r.Key))
			h := ""
			for _, hd := range r.Headers {
				h += hd.Key + "=" + string(hd.Value)
			}
			out.Headers = append(out.Headers, h)
			out.Partition = append(out.Partition, r.Partition)
			out.Offsets = append(out.Offsets, r.Offset)
		})
	}
	// One more short poll: anything beyond what was expected (an aborted record) shows up here.
	pctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) { out.Values = append(out.Values, string(r.Value)) })
	cancel()
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		fail("commit: %v", err)
	}
	return out
}

func produce(ctx context.Context, cl *kgo.Client, topic string, values ...string) {
	var recs []*kgo.Record
	for i, v := range values {
		recs = append(recs, &kgo.Record{
			Topic:   topic,
			Key:     []byte("k" + strconv.Itoa(i)),
			Value:   []byte(v),
			Headers: []kgo.RecordHeader{{Key: "h", Value: []byte(v)}},
		})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		fail("produce: %v", err)
	}
}

func values(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, prefix+strconv.Itoa(i))
	}
	return out
}

func main() {
	if len(os.Args) < 6 {
		fail("usage: franz roundtrip|txn BOOTSTRAP TOPIC GROUP N|TXN_ID")
	}
	mode, bootstrap, topic, group := os.Args[1], os.Args[2], os.Args[3], os.Args[4]
	ctx := context.Background()
	result := map[string]any{}
	switch mode {
	case "roundtrip":
		n, err := strconv.Atoi(os.Args[5])
		if err != nil {
			fail("N: %v", err)
		}
		p := client(kgo.SeedBrokers(bootstrap)) // idempotent by default
		produce(ctx, p, topic, values("v", 0, n)...)
		result["first"] = consume(ctx, bootstrap, topic, group, n, false)
		produce(ctx, p, topic, values("w", 0, 5)...)
		p.Close()
		result["after_commit"] = consume(ctx, bootstrap, topic, group, 5, false)
	case "txn":
		p := client(kgo.SeedBrokers(bootstrap), kgo.TransactionalID(os.Args[5]))
		for _, step := range []struct {
			vals   []string
			commit kgo.TransactionEndTry
		}{
			{values("c", 0, 10), kgo.TryCommit},
			{values("a", 0, 5), kgo.TryAbort},
			{values("c", 10, 20), kgo.TryCommit},
		} {
			if err := p.BeginTransaction(); err != nil {
				fail("begin: %v", err)
			}
			produce(ctx, p, topic, step.vals...)
			if err := p.EndTransaction(ctx, step.commit); err != nil {
				fail("end: %v", err)
			}
		}
		p.Close()
		result["read_committed"] = consume(ctx, bootstrap, topic, group, 20, true)
	default:
		fail("unknown mode %q", mode)
	}
	if err := json.NewEncoder(os.Stdout).Encode(result); err != nil {
		fail("encode: %v", err)
	}
}
