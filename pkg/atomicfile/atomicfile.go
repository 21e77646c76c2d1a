package atomicfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// Write creates path atomically with the bytes fill writes. If fill or any
// file operation fails, path is left as it was (absent or its old content) and
// the temporary file is removed. The file gets mode 0644.
func Write(path string, fill func(w io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err = fill(bw); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err = bw.Flush(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err = tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	// Sync the folder so the rename itself survives a crash; failure here is
	// not fatal on file systems that do not support it.
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// WriteBytes is Write for data already in memory.
func WriteBytes(path string, data []byte) error {
	return Write(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Check says, before any work, whether Write(path) can succeed: path must
// not name a folder or another non-regular file (a device, a pipe: use the
// tools' "-" for stdout), and its folder must exist and let this process
// create files there (a temporary file is created and removed, which tests
// permissions, read-only mounts and full quotas alike). Errors name path.
func Check(path string) error {
	if st, err := os.Stat(path); err == nil {
		switch {
		case st.IsDir():
			return fmt.Errorf("%s is a folder: give a file name", path)
		case !st.Mode().IsRegular():
			return fmt.Errorf("%s is not a regular file (%s): give a file name, or - for stdout where the tool takes it", path, st.Mode().Type())
		}
	} else if !os.IsNotExist(err) && !errors.Is(err, syscall.ENOTDIR) {
		return err
	}
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if err != nil {
		if os.IsNotExist(err) || errors.Is(err, syscall.ENOTDIR) {
			return fmt.Errorf("%s: folder %s does not exist", path, dir)
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("%s: %s is not a folder", path, dir)
	}
	if err := probe(dir); err != nil {
		return fmt.Errorf("%s: cannot write in %s: %w", path, dir, unwrapPath(err))
	}
	return nil
}

// CheckDir says, before any work, whether files can be written into folder
// dir: an existing dir must be a folder this process can create files in; a
// missing one must be creatable, so its nearest existing ancestor must be
// such a folder (nothing is created). Errors name dir.
func CheckDir(dir string) error {
	p := dir
	for {
		st, err := os.Stat(p)
		if err == nil {
			if !st.IsDir() {
				if p == dir {
					return fmt.Errorf("%s is a file, not a folder", dir)
				}
				return fmt.Errorf("cannot create folder %s: %s is a file", dir, p)
			}
			break
		}
		if !os.IsNotExist(err) && !errors.Is(err, syscall.ENOTDIR) {
			return fmt.Errorf("%s: %w", dir, err)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return fmt.Errorf("cannot create folder %s", dir)
		}
		p = parent
	}
	if err := probe(p); err != nil {
		if p == dir {
			return fmt.Errorf("cannot write in %s: %w", dir, unwrapPath(err))
		}
		return fmt.Errorf("cannot create folder %s: cannot write in %s: %w", dir, p, unwrapPath(err))
	}
	return nil
}

// probe creates and removes a temporary file in dir.
func probe(dir string) error {
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

// unwrapPath drops the path an *os.PathError repeats.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
