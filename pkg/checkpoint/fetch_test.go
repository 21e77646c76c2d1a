package checkpoint

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// server serves the sample checkpoint at /model.ckpt, a truncated copy at
// /short.ckpt (full Content-Length, half the body), text at /text.ckpt, and
// 404 elsewhere, counting requests.
func server(t *testing.T) (*httptest.Server, []byte, *atomic.Int32) {
	t.Helper()
	full := encode(t, sample(t))
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/model.ckpt":
			w.Header().Set("Content-Length", strconv.Itoa(len(full)))
			w.Write(full)
		case "/short.ckpt":
			w.Header().Set("Content-Length", strconv.Itoa(len(full)))
			w.Write(full[:len(full)/2])
		case "/nolength.ckpt":
			// Chunked, cut short: only the parser can tell.
			w.Write(full[:len(full)/2])
			w.(http.Flusher).Flush()
		case "/text.ckpt":
			w.Write([]byte("<html>not found</html>"))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("test server not on 127.0.0.1: %s", srv.URL)
	}
	return srv, full, &hits
}

func TestFetchDownloadsOnce(t *testing.T) {
	srv, full, hits := server(t)
	cache := filepath.Join(t.TempDir(), "cache")
	ctx := context.Background()
	u := srv.URL + "/model.ckpt"
	p, err := Fetch(ctx, u, cache)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(p) != cache || !strings.HasSuffix(p, "-model.ckpt") {
		t.Errorf("cache path %s", p)
	}
	got, err := os.ReadFile(p)
	if err != nil || string(got) != string(full) {
		t.Fatalf("cached file differs (%v)", err)
	}
	sum := sha256.Sum256(full)
	side, _ := os.ReadFile(p + ".sha256")
	if want := hex.EncodeToString(sum[:]) + "  " + filepath.Base(p) + "\n"; string(side) != want {
		t.Errorf("sidecar %q, want %q", side, want)
	}
	// Second call: from the cache, no request.
	p2, err := Fetch(ctx, u, cache)
	if err != nil || p2 != p || hits.Load() != 1 {
		t.Errorf("second Fetch: %s %v, %d requests", p2, err, hits.Load())
	}
	// Open through the URL gives the checkpoint.
	c, err := Open(ctx, u, cache)
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, sample(t), c)
	// A damaged cache entry is downloaded again.
	os.WriteFile(p, full[:100], 0o644)
	if _, err := Fetch(ctx, u, cache); err != nil || hits.Load() != 2 {
		t.Errorf("re-download after damage: %v, %d requests", err, hits.Load())
	}
	// With the right digest in the fragment: fine; with a wrong one: error.
	if _, err := Fetch(ctx, u+"#sha256="+hex.EncodeToString(sum[:]), cache); err != nil {
		t.Errorf("right digest: %v", err)
	}
	bad := strings.Repeat("0", 64)
	_, err = Fetch(ctx, u+"#sha256="+bad, cache)
	if err == nil || !strings.Contains(err.Error(), "sha256 "+hex.EncodeToString(sum[:])+", want "+bad) {
		t.Errorf("wrong digest: %v", err)
	}
}

func TestFetchErrors(t *testing.T) {
	srv, _, _ := server(t)
	// A port that refuses connections: listen, note the address, close.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + l.Addr().String() + "/model.ckpt"
	l.Close()
	cases := []struct {
		name string
		url  string
		want []string // substrings of the error
	}{
		{"404", srv.URL + "/missing.ckpt", []string{"GET " + srv.URL + "/missing.ckpt: 404 Not Found"}},
		{"connection refused", refused, []string{"GET " + refused + ": ", "connection refused"}},
		{"truncated body", srv.URL + "/short.ckpt", []string{"GET " + srv.URL + "/short.ckpt: ", "truncated"}},
		{"truncated chunked body", srv.URL + "/nolength.ckpt", []string{"GET " + srv.URL + "/nolength.ckpt: ", "truncated checkpoint"}},
		{"not a checkpoint", srv.URL + "/text.ckpt", []string{"GET " + srv.URL + "/text.ckpt: downloaded data is not a valid checkpoint: ", "not a yolodistill checkpoint"}},
		{"bad scheme", "ftp://127.0.0.1/x", []string{"scheme must be http or https"}},
		{"bad fragment", srv.URL + "/model.ckpt#md5=00", []string{"fragment must be sha256="}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cache := t.TempDir()
			_, err := Fetch(context.Background(), tc.url, cache)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			// Nothing (not even a temporary file) is left in the cache.
			ents, _ := os.ReadDir(cache)
			if len(ents) != 0 {
				t.Errorf("cache holds %d entries after a failed fetch: %v", len(ents), ents[0].Name())
			}
		})
	}
	// A cancelled context fails too.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Fetch(ctx, srv.URL+"/model.ckpt", t.TempDir()); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("cancelled: %v", err)
	}
}

func TestIsURL(t *testing.T) {
	for s, want := range map[string]bool{"http://x/y": true, "https://x": true, "ftp://x": false, "./http:/x": false, "weights.ckpt": false} {
		if IsURL(s) != want {
			t.Errorf("IsURL(%q) = %v", s, !want)
		}
	}
}

// TestFetchTimeouts: a server that accepts the connection and never
// answers, and one that stops sending halfway, fail after the idle timeout
// with a message naming the flag; nothing is kept in the cache. A slow
// download that keeps sending is not cut, and reports its progress;
// cancelling the context interrupts it with an error wrapping
// context.Canceled and a line saying so.
func TestFetchTimeouts(t *testing.T) {
	full := encode(t, sample(t))
	release := make(chan struct{})
	defer close(release)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/silent.ckpt": // accepts, never answers
			select {
			case <-release:
			case <-r.Context().Done():
			}
		case "/stall.ckpt": // headers and half the body, then nothing
			w.Header().Set("Content-Length", strconv.Itoa(len(full)))
			w.Write(full[:len(full)/2])
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
		case "/slow.ckpt": // the whole body, a chunk every 100 ms
			w.Header().Set("Content-Length", strconv.Itoa(len(full)))
			step := len(full)/10 + 1
			for i := 0; i < len(full); i += step {
				w.Write(full[i:min(i+step, len(full))])
				w.(http.Flusher).Flush()
				select {
				case <-time.After(100 * time.Millisecond):
				case <-r.Context().Done():
					return
				}
			}
		}
	}))
	defer srv.Close()
	var mu sync.Mutex
	var lines []string
	logf := func(format string, args ...any) {
		mu.Lock()
		lines = append(lines, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	opt := FetchOptions{ConnectTimeout: time.Second, IdleTimeout: 300 * time.Millisecond, Logf: logf}
	cache := filepath.Join(t.TempDir(), "cache")
	for _, c := range []struct{ path, want string }{
		{"/silent.ckpt", "no response within 300ms (the server accepted the connection but did not answer; --idle-timeout)"},
		{"/stall.ckpt", "no data for 300ms after"},
	} {
		start := time.Now()
		_, err := Fetch(WithFetch(context.Background(), opt), srv.URL+c.path, cache)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), srv.URL+c.path) {
			t.Errorf("%s: %v, want an error naming the URL with %q", c.path, err, c.want)
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("%s: gave up after %v", c.path, el)
		}
	}
	if ents, _ := os.ReadDir(cache); len(ents) != 0 {
		t.Errorf("the cache holds %v after failed downloads", ents)
	}
	// Slow but steady: no timeout (each pause is well under the idle
	// timeout, and the whole download longer than it).
	if _, err := Fetch(WithFetch(context.Background(), FetchOptions{IdleTimeout: 600 * time.Millisecond}), srv.URL+"/slow.ckpt", cache); err != nil {
		t.Errorf("slow download: %v", err)
	}
	// Interrupted: the error wraps context.Canceled (tools exit 130).
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	lines = nil
	_, err := Fetch(WithFetch(ctx, FetchOptions{IdleTimeout: time.Minute, Logf: logf}), srv.URL+"/stall.ckpt", t.TempDir())
	if !errors.Is(err, context.Canceled) {
		t.Errorf("interrupted download: %v, want context.Canceled", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lines) == 0 || !strings.Contains(lines[len(lines)-1], "interrupted") {
		t.Errorf("no line about the interruption: %q", lines)
	}
}

// TestFetchProgress: a long download prints progress lines (every
// ProgressEvery; here the reader's clock is moved instead of waiting).
func TestFetchProgress(t *testing.T) {
	var lines []string
	r := &idleReader{r: strings.NewReader(strings.Repeat("x", 3000)), t: time.NewTimer(time.Hour), idle: time.Hour, total: 3000,
		logf: func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) }, url: "http://h/m.ckpt",
		start: time.Now().Add(-10 * time.Second), last: time.Now().Add(-ProgressEvery)}
	defer r.t.Stop()
	buf := make([]byte, 1000)
	r.Read(buf)
	if len(lines) != 1 || !strings.Contains(lines[0], "downloading http://h/m.ckpt: 1.0 kB of 3.0 kB (33%)") {
		t.Errorf("progress: %q", lines)
	}
	r.Read(buf) // within ProgressEvery of the last line: quiet
	if len(lines) != 1 {
		t.Errorf("progress lines %q, want one per ProgressEvery", lines)
	}
}
