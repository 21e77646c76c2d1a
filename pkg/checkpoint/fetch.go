package checkpoint

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

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

// download GETs u into dst atomically, parsing the body as a checkpoint
// while it streams when parse is set. It returns the body's hex SHA-256.
func download(ctx context.Context, u, dst string, parse bool) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", u, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", u, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	var h hash.Hash = sha256.New()
	err = atomicfile.Write(dst, func(w io.Writer) error {
		if !parse {
			n, cerr := io.Copy(io.MultiWriter(w, h), resp.Body)
			if cerr == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
				cerr = io.ErrUnexpectedEOF
			}
			if errors.Is(cerr, io.ErrUnexpectedEOF) {
				return fmt.Errorf("GET %s: body truncated after %d bytes: %w", u, n, cerr)
			}
			if cerr != nil {
				return fmt.Errorf("GET %s: %w", u, cerr)
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
		n, cerr := io.Copy(io.MultiWriter(w, h, pw), resp.Body)
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
			if errors.Is(cerr, io.ErrUnexpectedEOF) {
				return fmt.Errorf("GET %s: body truncated after %d bytes: %w", u, n, cerr)
			}
			return fmt.Errorf("GET %s: %w", u, cerr)
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
		return "", inner
	}
	return hex.EncodeToString(h.Sum(nil)), nil
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
