package checkpoint

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"yolodistill/pkg/atomicfile"
)

// IsURL reports whether s is an http or https URL (for --pretrained PATH|URL).
func IsURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// DefaultCacheDir is where downloaded checkpoints are kept:
// $XDG_CACHE_HOME/yolodistill, else os.UserCacheDir()/yolodistill
// (~/.cache/yolodistill on Linux), else a folder in the temp dir.
func DefaultCacheDir() string {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "yolodistill")
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "yolodistill")
	}
	return filepath.Join(os.TempDir(), "yolodistill-cache")
}

// Open loads a checkpoint from a local path, or from an http(s) URL through
// Fetch's cache in cacheDir (DefaultCacheDir when "").
func Open(ctx context.Context, pathOrURL, cacheDir string) (*Checkpoint, error) {
	if IsURL(pathOrURL) {
		if cacheDir == "" {
			cacheDir = DefaultCacheDir()
		}
		p, err := Fetch(ctx, pathOrURL, cacheDir)
		if err != nil {
			return nil, err
		}
		return Load(p)
	}
	return Load(pathOrURL)
}

// Fetch downloads the checkpoint at rawURL into cacheDir (created if needed)
// unless a verified copy is already there, and returns the local path.
//
// The cache file name is derived from the URL. A download is written
// atomically and kept only when the whole body arrived and parses as a valid
// checkpoint (checksums included); a URL fragment "#sha256=HEX" additionally
// requires that digest of the file. Beside the file, NAME.sha256 records its
// digest (sha256sum format); a cached copy is reused only when it still
// matches that digest and parses. Errors name the URL: an HTTP status other
// than 200, a refused connection, a truncated body, a body that is not a
// checkpoint.
func Fetch(ctx context.Context, rawURL, cacheDir string) (string, error) {
	return fetch(ctx, rawURL, cacheDir, nil)
}

// FetchVerified is Fetch for files that are not (or not only) checkpoints:
// the download is kept only when verify accepts the whole downloaded file
// (verify gets its path), and a cached copy is reused only when it matches
// its recorded digest and verify accepts it. Errors name the URL.
func FetchVerified(ctx context.Context, rawURL, cacheDir string, verify func(path string) error) (string, error) {
	return fetch(ctx, rawURL, cacheDir, verify)
}

func fetch(ctx context.Context, rawURL, cacheDir string, verify func(string) error) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("checkpoint URL %q: %w", rawURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("checkpoint URL %q: scheme must be http or https", rawURL)
	}
	var wantSum string
	if u.Fragment != "" {
		v, ok := strings.CutPrefix(u.Fragment, "sha256=")
		if !ok || len(v) != 64 {
			return "", fmt.Errorf("checkpoint URL %q: fragment must be sha256=<64 hex digits>", rawURL)
		}
		wantSum = strings.ToLower(v)
		u.Fragment = ""
	}
	clean := u.String()
	dst := filepath.Join(cacheDir, cacheName(clean))
	if ok := cachedOK(dst, wantSum, verify); ok {
		return dst, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("checkpoint cache: %w", err)
	}
	sum, err := download(ctx, clean, dst, verify == nil)
	if err != nil {
		return "", err
	}
	if verify != nil {
		if err := verify(dst); err != nil {
			os.Remove(dst)
			return "", fmt.Errorf("GET %s: the downloaded file is not usable: %w", clean, err)
		}
	}
	if wantSum != "" && sum != wantSum {
		os.Remove(dst)
		return "", fmt.Errorf("GET %s: sha256 %s, want %s", clean, sum, wantSum)
	}
	side := fmt.Sprintf("%s  %s\n", sum, filepath.Base(dst))
	if err := atomicfile.WriteBytes(dst+".sha256", []byte(side)); err != nil {
		return "", err
	}
	return dst, nil
}

// cacheName is a short digest of the URL plus its sanitised last segment.
func cacheName(u string) string {
	h := sha256.Sum256([]byte(u))
	base := path.Base(strings.SplitN(strings.SplitN(u, "?", 2)[0], "://", 2)[1])
	var b strings.Builder
	for _, r := range base {
		if r < 128 && (r == '.' || r == '-' || r == '_' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')) {
			b.WriteRune(r)
		}
	}
	name := strings.Trim(b.String(), ".")
	if name == "" || !strings.Contains(u[strings.Index(u, "://")+3:], "/") {
		name = "checkpoint"
	}
	if len(name) > 80 {
		name = name[len(name)-80:]
	}
	return hex.EncodeToString(h[:8]) + "-" + name
}

// cachedOK reports whether dst exists, matches its recorded digest (and
// wantSum when set) and parses as a checkpoint (or, with verify, verify
// accepts it).
func cachedOK(dst, wantSum string, verify func(string) error) bool {
	side, err := os.ReadFile(dst + ".sha256")
	if err != nil {
		return false
	}
	rec, _, _ := strings.Cut(strings.TrimSpace(string(side)), " ")
	if wantSum != "" && rec != wantSum {
		return false
	}
	f, err := os.Open(dst)
	if err != nil {
		return false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false
	}
	h := sha256.New()
	if verify != nil {
		if _, err := io.Copy(h, f); err != nil || hex.EncodeToString(h.Sum(nil)) != rec {
			return false
		}
		return verify(dst) == nil
	}
	if _, err := Read(io.TeeReader(f, h), st.Size()); err != nil {
		return false
	}
	return hex.EncodeToString(h.Sum(nil)) == rec
}

// Defaults of FetchOptions.
const (
	DefaultConnectTimeout = 30 * time.Second
	DefaultIdleTimeout    = 60 * time.Second
	// ProgressEvery is how often a download reports its progress (FetchOptions.Logf).
	ProgressEvery = 5 * time.Second
)

// FetchOptions tune downloads. Tools put them into the context the loaders
// receive (WithFetch), so that every download of a run, wherever it starts,
// uses the tool's flags.
type FetchOptions struct {
	// ConnectTimeout bounds connecting to the server (name lookup, TCP and
	// TLS handshakes); 0 means DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// IdleTimeout bounds every wait for the server once connected: for the
	// response headers, and any pause in the body; 0 means
	// DefaultIdleTimeout. A slow download that keeps sending is never cut.
	IdleTimeout time.Duration
	// Logf, when set, receives a progress line every ProgressEvery while a
	// download runs (bytes so far, of how many, and the rate), and a line
	// when a download is interrupted.
	Logf func(format string, args ...any)
}

type fetchKey struct{}

// WithFetch returns a context whose downloads (Fetch, Open) use o.
func WithFetch(ctx context.Context, o FetchOptions) context.Context {
	return context.WithValue(ctx, fetchKey{}, o)
}

func fetchOptions(ctx context.Context) FetchOptions {
	o, _ := ctx.Value(fetchKey{}).(FetchOptions)
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return o
}

// errIdle cancels a download whose server stopped sending.
var errIdle = errors.New("idle timeout")

// idleReader resets a timer on every read that returns data.
type idleReader struct {
	r     io.Reader
	t     *time.Timer
	idle  time.Duration
	n     int64
	total int64 // Content-Length, or -1
	logf  func(format string, args ...any)
	url   string
	start time.Time
	last  time.Time
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.t.Reset(r.idle)
		r.n += int64(n)
		if now := time.Now(); now.Sub(r.last) >= ProgressEvery {
			r.last = now
			of := ""
			if r.total > 0 {
				of = fmt.Sprintf(" of %s (%.0f%%)", mb(r.total), 100*float64(r.n)/float64(r.total))
			}
			r.logf("downloading %s: %s%s, %s/s", r.url, mb(r.n), of, mb(int64(float64(r.n)/now.Sub(r.start).Seconds())))
		}
	}
	return n, err
}

// mb prints a byte count in bytes, kB or MB.
func mb(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d bytes", n)
	case n < 1e6:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%.1f MB", float64(n)/1e6)
}

// download GETs u into dst atomically, parsing the body as a checkpoint
// while it streams when parse is set. It returns the body's hex SHA-256. Connecting and every wait for data are
// bounded (FetchOptions from ctx); cancelling ctx stops it with an error
// wrapping ctx's error.
func download(ctx context.Context, u, dst string, parse bool) (string, error) {
	fo := fetchOptions(ctx)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	dialer := &net.Dialer{Timeout: fo.ConnectTimeout, KeepAlive: 30 * time.Second}
	client := &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   fo.ConnectTimeout,
		ResponseHeaderTimeout: fo.IdleTimeout,
	}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", u, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil && context.Cause(ctx) != errIdle {
			fo.Logf("download of %s interrupted before any data arrived", u)
		}
		return "", fmt.Errorf("GET %s: %w", u, netError(ctx, err, fo, 0))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	start := time.Now()
	body := &idleReader{r: resp.Body, t: time.AfterFunc(fo.IdleTimeout, func() { cancel(errIdle) }), idle: fo.IdleTimeout,
		total: resp.ContentLength, logf: fo.Logf, url: u, start: start, last: start}
	defer body.t.Stop()
	var h hash.Hash = sha256.New()
	err = atomicfile.Write(dst, func(w io.Writer) error {
		if !parse {
			n, cerr := io.Copy(io.MultiWriter(w, h), body)
			if cerr == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
				cerr = io.ErrUnexpectedEOF
			}
			if errors.Is(cerr, io.ErrUnexpectedEOF) && ctx.Err() == nil {
				return fmt.Errorf("GET %s: body truncated after %d bytes: %w", u, n, cerr)
			}
			if cerr != nil {
				return fmt.Errorf("GET %s: %w", u, netError(ctx, cerr, fo, n))
			}
			return nil
		}
		pr, pw := io.Pipe()
		parsed := make(chan error, 1)
		go func() {
			_, perr := Read(pr, resp.ContentLength)
			pr.CloseWithError(errParsed) // unblock the writer if the parser stopped early
			parsed <- perr
		}()
		n, cerr := io.Copy(io.MultiWriter(w, h, pw), body)
		if cerr == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
			cerr = io.ErrUnexpectedEOF
		}
		if cerr != nil && !errors.Is(cerr, errParsed) {
			pw.CloseWithError(cerr)
		} else {
			pw.Close()
		}
		perr := <-parsed
		switch {
		case cerr != nil && !errors.Is(cerr, errParsed):
			if errors.Is(cerr, io.ErrUnexpectedEOF) && ctx.Err() == nil {
				return fmt.Errorf("GET %s: body truncated after %d bytes: %w", u, n, cerr)
			}
			return fmt.Errorf("GET %s: %w", u, netError(ctx, cerr, fo, n))
		case perr != nil:
			return fmt.Errorf("GET %s: downloaded data is not a valid checkpoint: %w", u, perr)
		}
		return nil
	})
	if err != nil {
		// atomicfile prefixes dst; the URL message is the useful part.
		var inner error = err
		if ue := errors.Unwrap(err); ue != nil {
			inner = ue
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			fo.Logf("download of %s interrupted after %s; nothing was kept", u, mb(body.n))
		}
		return "", inner
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// netError explains a failed request or body read: a timeout names the
// flag that sets it; an interruption keeps ctx's error (wrapped) so that
// tools exit 130.
func netError(ctx context.Context, err error, fo FetchOptions, got int64) error {
	if context.Cause(ctx) == errIdle {
		return fmt.Errorf("no data for %v after %s (the server stopped sending; --idle-timeout)", fo.IdleTimeout, mb(got))
	}
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Op == "dial" {
			return fmt.Errorf("could not connect within %v (--connect-timeout)", fo.ConnectTimeout)
		}
		if strings.Contains(err.Error(), "awaiting response headers") {
			return fmt.Errorf("no response within %v (the server accepted the connection but did not answer; --idle-timeout)", fo.IdleTimeout)
		}
		if strings.Contains(err.Error(), "TLS handshake") {
			return fmt.Errorf("TLS handshake did not finish within %v (--connect-timeout)", fo.ConnectTimeout)
		}
	}
	return unwrapURLError(err)
}

var errParsed = errors.New("parser finished")

// unwrapURLError drops net/url's repetition of the method and URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
