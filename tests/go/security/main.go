// The franz-go (kgo) client over TLS and SASL, driven by tests/security/test_connect_other_clients.py.
//
//	franz-security CASE_JSON...
//
// Each argument is one case, a JSON object:
//
//	{"name", "bootstrap", "protocol": "SSL|SASL_PLAINTEXT|SASL_SSL|PLAINTEXT",
//	 "mechanism": "PLAIN|SCRAM-SHA-256|SCRAM-SHA-512", "username", "password",
//	 "ca", "cert", "key" (PEM file paths), "topic", "group", "n", "partitions", "timeout_ms"}
//
// A case creates its topic (an existing one is used as it is), produces n records, consumes them back in
// the consumer group, commits and reads the committed offsets back. It prints one JSON line per case:
//
//	{"name", "ok": true, "produced", "consumed", "values_match", "committed"}
//	{"name", "ok": false, "stage", "error" (Kafka's error name when there is one), "code", "message"}
//
// Every wait is bounded by the case's timeout_ms, so a refused login ends as a failed case, not a hang.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

type securityCase struct {
	Name       string `json:"name"`
	Bootstrap  string `json:"bootstrap"`
	Protocol   string `json:"protocol"`
	Mechanism  string `json:"mechanism"`
	Username   string `json:"username"`
	Password   string `json:"password"`
	CA         string `json:"ca"`
	Cert       string `json:"cert"`
	Key        string `json:"key"`
	Topic      string `json:"topic"`
	Group      string `json:"group"`
	N          int    `json:"n"`
	Partitions int32  `json:"partitions"`
	TimeoutMs  int    `json:"timeout_ms"`
}

// stageError is a failed step of a case: which step, and the client's error.
type stageError struct {
	stage string
	err   error
}

func (e *stageError) Error() string { return e.stage + ": " + e.err.Error() }

func (e *stageError) Unwrap() error { return e.err }

func failAt(stage string, err error) error { return &stageError{stage, err} }

// securityOpts are the client options of a case's protocol: TLS and SASL as the listener wants them.
func securityOpts(c securityCase) ([]kgo.Opt, error) {
	var opts []kgo.Opt
	switch c.Protocol {
	case "SSL", "SASL_SSL":
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.CA != "" {
			pem, err := os.ReadFile(c.CA)
			if err != nil {
				return nil, err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("no certificate in %s", c.CA)
			}
			cfg.RootCAs = pool
		}
		if c.Cert != "" {
			pair, err := tls.LoadX509KeyPair(c.Cert, c.Key)
			if err != nil {
				return nil, err
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	case "PLAINTEXT", "SASL_PLAINTEXT":
	default:
		return nil, fmt.Errorf("unknown security protocol %q", c.Protocol)
	}
	if c.Protocol == "SASL_PLAINTEXT" || c.Protocol == "SASL_SSL" {
		switch c.Mechanism {
		case "PLAIN":
			opts = append(opts, kgo.SASL(plain.Auth{User: c.Username, Pass: c.Password}.AsMechanism()))
		case "SCRAM-SHA-256":
			opts = append(opts, kgo.SASL(scram.Auth{User: c.Username, Pass: c.Password}.AsSha256Mechanism()))
		case "SCRAM-SHA-512":
			opts = append(opts, kgo.SASL(scram.Auth{User: c.Username, Pass: c.Password}.AsSha512Mechanism()))
		default:
			return nil, fmt.Errorf("unknown SASL mechanism %q", c.Mechanism)
		}
	}
	return opts, nil
}

// createTopic creates the case's topic; one that exists already is fine.
func createTopic(ctx context.Context, cl *kgo.Client, c securityCase) error {
	req := kmsg.NewPtrCreateTopicsRequest()
	t := kmsg.NewCreateTopicsRequestTopic()
	t.Topic, t.NumPartitions, t.ReplicationFactor = c.Topic, c.Partitions, 1
	req.Topics = append(req.Topics, t)
	req.TimeoutMillis = int32(c.TimeoutMs)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	for _, rt := range resp.Topics {
		if err := kerr.ErrorForCode(rt.ErrorCode); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return err
		}
	}
	return nil
}

// committed sums the group's committed offsets of the topic.
func committed(ctx context.Context, cl *kgo.Client, c securityCase) (int64, error) {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = c.Group
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic = c.Topic
	for p := int32(0); p < c.Partitions; p++ {
		rt.Partitions = append(rt.Partitions, p)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return 0, err
	}
	var sum int64
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return 0, err
			}
			if p.Offset > 0 {
				sum += p.Offset
			}
		}
	}
	return sum, nil
}

func run(c securityCase) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(c.TimeoutMs)*time.Millisecond)
	defer cancel()
	sec, err := securityOpts(c)
	if err != nil {
		return nil, failAt("config", err)
	}
	base := append([]kgo.Opt{
		kgo.SeedBrokers(c.Bootstrap),
		kgo.ClientID("odradek-tests-franz-security"),
		kgo.DialTimeout(time.Duration(c.TimeoutMs) * time.Millisecond),
		kgo.RequestRetries(2),
		kgo.RetryTimeout(time.Duration(c.TimeoutMs) * time.Millisecond),
	}, sec...)
	base = base[:len(base):len(base)] // the producer's and the consumer's options append to copies

	deliveryTimeout := kgo.RecordDeliveryTimeout(time.Duration(c.TimeoutMs) * time.Millisecond)
	producer, err := kgo.NewClient(append(base, deliveryTimeout)...)
	if err != nil {
		return nil, failAt("config", err)
	}
	defer producer.Close()
	if err := createTopic(ctx, producer, c); err != nil {
		return nil, failAt("create", err)
	}
	want := make([]string, c.N)
	recs := make([]*kgo.Record, c.N)
	for i := range recs {
		want[i] = c.Name + "-" + strconv.Itoa(i)
		recs[i] = &kgo.Record{Topic: c.Topic, Key: []byte(strconv.Itoa(i)), Value: []byte(want[i])}
	}
	if err := producer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return nil, failAt("produce", err)
	}

	consumer, err := kgo.NewClient(append(base,
		kgo.ConsumerGroup(c.Group),
		kgo.ConsumeTopics(c.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
	)...)
	if err != nil {
		return nil, failAt("config", err)
	}
	defer consumer.Close()
	var got []string
	for len(got) < c.N && ctx.Err() == nil {
		fetches := consumer.PollFetches(ctx)
		var ferr error
		// Retriable errors (NOT_COORDINATOR while the offsets topic is made) are the client's to retry.
		fetches.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !kerr.IsRetriable(err) && ferr == nil {
				ferr = err
			}
		})
		if ferr != nil {
			return nil, failAt("consume", ferr)
		}
		fetches.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if len(got) < c.N {
		err := fmt.Errorf("%d of %d records before the deadline: %w", len(got), c.N, ctx.Err())
		return nil, failAt("consume", err)
	}
	if err := consumer.CommitUncommittedOffsets(ctx); err != nil {
		return nil, failAt("commit", err)
	}
	sum, err := committed(ctx, consumer, c)
	if err != nil {
		return nil, failAt("committed", err)
	}
	sort.Strings(got)
	sort.Strings(want)
	match := len(got) == len(want)
	for i := 0; match && i < len(got); i++ {
		match = got[i] == want[i]
	}
	return map[string]any{
		"produced": c.N, "consumed": len(got), "values_match": match, "committed": sum,
	}, nil
}

// describe is the JSON of a failed case: the stage, and Kafka's error name and code when the client
// reports one (a broker's error code, a refused SASL login).
func describe(err error) map[string]any {
	out := map[string]any{"ok": false, "stage": "", "error": "", "code": -1, "message": err.Error()}
	var se *stageError
	if errors.As(err, &se) {
		out["stage"] = se.stage
	}
	var ke *kerr.Error
	switch {
	case errors.As(err, &ke):
		out["error"], out["code"] = ke.Message, ke.Code
	case errors.Is(err, context.DeadlineExceeded):
		out["error"] = "TIMEOUT"
	default:
		out["error"] = fmt.Sprintf("%T", errors.Unwrap(err))
	}
	return out
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: franz-security CASE_JSON...")
		os.Exit(2)
	}
	enc := json.NewEncoder(os.Stdout)
	for _, arg := range os.Args[1:] {
		c := securityCase{N: 10, Partitions: 1, TimeoutMs: 30000}
		if err := json.Unmarshal([]byte(arg), &c); err != nil {
			fmt.Fprintf(os.Stderr, "case %q: %v\n", arg, err)
			os.Exit(2)
		}
		out, err := run(c)
		if err != nil {
			out = describe(err)
		} else {
			out["ok"] = true
		}
		out["name"] = c.Name
		if err := enc.Encode(out); err != nil {
			os.Exit(1)
		}
	}
}
