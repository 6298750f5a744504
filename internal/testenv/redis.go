package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisURLEnv names the variable that points the tests at their Redis.
const RedisURLEnv = "OPENINTERN_TEST_REDIS_URL"

// DefaultRedisURL is used when RedisURLEnv is unset: scripts/services.sh starts
// a Redis there.
const DefaultRedisURL = "redis://127.0.0.1:6379/0"

// redisPingTimeout bounds how long RedisURL waits for the server to answer.
const redisPingTimeout = 5 * time.Second

// RedisURL returns the Redis URL the tests must use (OPENINTERN_TEST_REDIS_URL,
// default redis://127.0.0.1:6379/0) after checking that the server answers a
// PING. An unreachable Redis fails the test: it is never skipped.
func RedisURL(t testing.TB) string {
	t.Helper()
	url := os.Getenv(RedisURLEnv)
	if url == "" {
		url = DefaultRedisURL
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("testenv: %s=%q is not a Redis URL: %v", RedisURLEnv, url, err)
	}
	client := redis.NewClient(opts)
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), redisPingTimeout)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		t.Fatalf("testenv: Redis is not reachable at %s (%v); start it with ./scripts/services.sh or set %s",
			url, err, RedisURLEnv)
	}
	return url
}

// RedisClient returns a client of the test Redis (see RedisURL), closed when
// the test ends.
func RedisClient(t testing.TB) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(RedisURL(t))
	if err != nil {
		t.Fatalf("testenv: parse Redis URL: %v", err)
	}
	client := redis.NewClient(opts)
	t.Cleanup(func() { _ = client.Close() })
	return client
}

// RedisPrefix returns a key and channel prefix that no other test uses, such
// as "oitest:TestBus_sub:1f2e3d4c5b6a7988:". The keys under it are deleted when
// the test ends.
func RedisPrefix(t testing.TB) string {
	t.Helper()
	url := RedisURL(t)
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("testenv: random prefix: %v", err)
	}
	prefix := fmt.Sprintf("oitest:%s:%s:", sanitizeRedisKeyPart(t.Name()), hex.EncodeToString(b[:]))
	t.Cleanup(func() {
		if err := deleteRedisKeys(url, prefix); err != nil {
			t.Errorf("testenv: delete Redis keys %s*: %v", prefix, err)
		}
	})
	return prefix
}

// sanitizeRedisKeyPart keeps letters, digits, '-', '_' and '.', so the prefix holds
// no glob character of SCAN MATCH; it also bounds the length.
func sanitizeRedisKeyPart(s string) string {
	const maxLen = 64
	var sb strings.Builder
	for _, r := range s {
		if sb.Len() >= maxLen {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			sb.WriteRune(r)
		default:
			sb.WriteByte('_')
		}
	}
	return sb.String()
}

func deleteRedisKeys(url, prefix string) error {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return fmt.Errorf("parse Redis URL: %w", err)
	}
	client := redis.NewClient(opts)
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	iter := client.Scan(ctx, 0, prefix+"*", 500).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 500 {
			if err := client.Unlink(ctx, batch...).Err(); err != nil {
				return fmt.Errorf("unlink: %w", err)
			}
			batch = batch[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	if len(batch) > 0 {
		if err := client.Unlink(ctx, batch...).Err(); err != nil {
			return fmt.Errorf("unlink: %w", err)
		}
	}
	return nil
}
