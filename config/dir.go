package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// MaxFileSize caps one configuration file. A thousand APIs in one file
// are about 1 MiB of YAML; the cap is there so a link to /dev/zero or a
// runaway generator cannot make every reload read without end.
const MaxFileSize = 16 << 20

// ReadDir returns the configuration files of dir: every *.yaml and *.yml
// entry whose name does not start with a dot, sorted by name, with its
// contents. It is the one place that decides what a config directory
// holds: `flexgw validate`, every reload and the change watcher all call it.
//
// Only regular files are configuration. A symbolic link is followed, so
// a Kubernetes ConfigMap volume (name.yaml → ..data/name.yaml → the file)
// works, but what it points to must be a regular file too. A link to
// nowhere, a directory, a FIFO, a device or socket, an unreadable file and
// a file over MaxFileSize are each an error naming the entry: skipping
// them would silently drop the policies they hold, and reading a FIFO or
// /dev/zero would block or never end. No error quotes file contents.
//
// An empty directory, or one with no YAML files, is a valid configuration
// with no APIs (a fresh install's conf.d holds only a README).
func ReadDir(dir string) ([]File, ErrorList) {
	st, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, ErrorList{{File: dir, Reason: "configuration directory does not exist"}}
		}
		return nil, ErrorList{{File: dir, Reason: "cannot read configuration directory: " + pathErrText(err)}}
	}
	if !st.IsDir() {
		return nil, ErrorList{{File: dir, Reason: "not a directory (give the directory holding the *.yaml files)"}}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, ErrorList{{File: dir, Reason: "cannot read configuration directory: " + pathErrText(err)}}
	}
	var names []string
	for _, e := range entries {
		if IsConfigName(e.Name()) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	files := make([]File, 0, len(names))
	var errs ErrorList
	for _, n := range names {
		path := filepath.Join(dir, n)
		data, err := readConfigFile(path)
		if err != nil {
			errs = append(errs, &Error{File: path, Reason: err.Error()})
			continue
		}
		files = append(files, File{Name: path, Data: data})
	}
	return files, errs
}

// IsConfigName reports whether a directory entry's name is one ReadDir
// reads: *.yaml or *.yml, not hidden. Hidden entries are editor swap files
// and the ..data / ..2024_… entries of Kubernetes volumes.
func IsConfigName(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	ext := filepath.Ext(name)
	return ext == ".yaml" || ext == ".yml"
}

// readConfigFile reads one regular file of at most MaxFileSize bytes.
func readConfigFile(path string) ([]byte, error) {
	// Stat follows symbolic links: the target is what must be regular. It
	// is checked before opening, as opening a device can have effects of
	// its own (a watchdog starts, a tape rewinds).
	st, err := os.Stat(path)
	if err != nil {
		if lst, lerr := os.Lstat(path); lerr == nil && lst.Mode()&fs.ModeSymlink != 0 && errors.Is(err, fs.ErrNotExist) {
			target, _ := os.Readlink(path)
			return nil, fmt.Errorf("broken symbolic link: its target %q does not exist", target)
		}
		return nil, fmt.Errorf("cannot read: %s", pathErrText(err))
	}
	if err := checkRegular(st); err != nil {
		return nil, err
	}
	// O_NONBLOCK: the entry may have been replaced by a FIFO since Stat,
	// and opening a FIFO for reading blocks until a writer appears.
	// O_NOCTTY: a terminal never becomes the process's controlling one.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot open: %s", pathErrText(err))
	}
	defer f.Close()
	// What was opened is what counts (fstat), whatever the path names now.
	fst, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cannot read: %s", pathErrText(err))
	}
	if err := checkRegular(fst); err != nil {
		return nil, err
	}
	// Sized from fstat: io.ReadAll's doubling made two to three times the
	// file in garbage on every read (the watcher reads the directory on
	// each poll). A file that grew since is still read to its end.
	data := make([]byte, 0, min(fst.Size(), MaxFileSize)+1)
	data, err = readAllInto(data, io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read: %s", pathErrText(err))
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("larger than the %d MiB limit for one configuration file", MaxFileSize>>20)
	}
	return data, nil
}

// readAllInto is io.ReadAll appending to buf.
func readAllInto(buf []byte, r io.Reader) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func checkRegular(st fs.FileInfo) error {
	m := st.Mode()
	switch {
	case m.IsRegular():
		if st.Size() > MaxFileSize {
			return fmt.Errorf("%d bytes, larger than the %d MiB limit for one configuration file", st.Size(), MaxFileSize>>20)
		}
		return nil
	case m.IsDir():
		return errors.New("is a directory, not a configuration file")
	case m&fs.ModeNamedPipe != 0:
		return errors.New("is a FIFO (named pipe), not a regular file")
	case m&fs.ModeSocket != 0:
		return errors.New("is a socket, not a regular file")
	case m&fs.ModeCharDevice != 0:
		return errors.New("is a character device, not a regular file")
	case m&fs.ModeDevice != 0:
		return errors.New("is a block device, not a regular file")
	default:
		return fmt.Errorf("is not a regular file (mode %s)", m.Type())
	}
}

// pathErrText is the reason of a *fs.PathError without the path, which the
// config error names already.
func pathErrText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
