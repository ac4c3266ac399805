package config

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const svcDoc = "apiVersion: gateway.mulesoft.com/v1alpha1\nkind: Service\nmetadata:\n  name: %s\nspec:\n  address: http://127.0.0.1:9000\n"

func svcYAML(name string) string { return strings.ReplaceAll(svcDoc, "%s", name) }

func mustWrite(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// loadWithin runs LoadDir in a goroutine: a FIFO or device read would block
// the test forever, so a load that does not return is reported as blocked
// (a liveness bound, generous for a loaded machine, not a speed check).
func loadWithin(t *testing.T, dir string) (*Set, error) {
	t.Helper()
	type result struct {
		set *Set
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := LoadDir(dir)
		ch <- result{s, err}
	}()
	select {
	case r := <-ch:
		return r.set, r.err
	case <-time.After(60 * time.Second):
		t.Fatalf("LoadDir(%s) blocked", dir)
		return nil, nil
	}
}

// TestEmptyDirIsValid: a fresh install's conf.d holds only a README; that
// is a configuration with no APIs, not an error.
func TestEmptyDirIsValid(t *testing.T) {
	empty := t.TempDir()
	readme := t.TempDir()
	mustWrite(t, filepath.Join(readme, "README"), "put *.yaml files here\n")
	mustWrite(t, filepath.Join(readme, ".hidden.yaml"), "not: [valid")
	for _, dir := range []string{empty, readme} {
		set, err := loadWithin(t, dir)
		if err != nil {
			t.Fatalf("LoadDir(%s) = %v, want a valid empty configuration", dir, err)
		}
		if set == nil || len(set.APIs) != 0 || len(set.Files) != 0 {
			t.Fatalf("LoadDir(%s) = %+v, want no files and no APIs", dir, set)
		}
	}
}

// TestKubernetesConfigMapLayout loads a directory laid out the way the
// kubelet mounts a ConfigMap (name → ..data/name, ..data → a timestamped
// directory) and follows an atomic swap of ..data.
func TestKubernetesConfigMapLayout(t *testing.T) {
	dir := t.TempDir()
	v1 := filepath.Join(dir, "..2026_12_02_08_00_00.000000001")
	if err := os.Mkdir(v1, 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(v1, "10-svc.yaml"), svcYAML("one"))
	mustSymlink(t, filepath.Base(v1), filepath.Join(dir, "..data"))
	mustSymlink(t, "..data/10-svc.yaml", filepath.Join(dir, "10-svc.yaml"))
	set, err := loadWithin(t, dir)
	if err != nil {
		t.Fatalf("ConfigMap layout: %v", err)
	}
	if len(set.Services) != 1 || set.Services[0].Name != "one" {
		t.Fatalf("services = %+v, want one", set.Services)
	}

	// The kubelet writes a new timestamped directory and renames a new
	// ..data link over the old one.
	v2 := filepath.Join(dir, "..2026_12_02_08_01_00.000000002")
	if err := os.Mkdir(v2, 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(v2, "10-svc.yaml"), svcYAML("two"))
	mustSymlink(t, filepath.Base(v2), filepath.Join(dir, "..data_tmp"))
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(v1); err != nil {
		t.Fatal(err)
	}
	set, err = loadWithin(t, dir)
	if err != nil {
		t.Fatalf("after the swap: %v", err)
	}
	if len(set.Services) != 1 || set.Services[0].Name != "two" {
		t.Fatalf("services after the swap = %+v, want two", set.Services)
	}
}

// TestDirAttacks: every entry that is not a regular file (after following
// links) is an error naming the entry, never a silent skip, never a hang.
func TestDirAttacks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) // creates dir/20-auth.yaml
		want  string
	}{
		{"dangling symlink", func(t *testing.T, dir string) {
			mustSymlink(t, filepath.Join(dir, "gone.yaml"), filepath.Join(dir, "20-auth.yaml"))
		}, "broken symbolic link"},
		{"symlink loop", func(t *testing.T, dir string) {
			mustSymlink(t, "20-auth.yaml", filepath.Join(dir, "20-auth.yaml"))
		}, "cannot read: too many levels of symbolic links"},
		{"FIFO", func(t *testing.T, dir string) {
			if err := syscall.Mkfifo(filepath.Join(dir, "20-auth.yaml"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "is a FIFO"},
		{"symlink to a FIFO", func(t *testing.T, dir string) {
			fifo := filepath.Join(t.TempDir(), "pipe")
			if err := syscall.Mkfifo(fifo, 0o644); err != nil {
				t.Fatal(err)
			}
			mustSymlink(t, fifo, filepath.Join(dir, "20-auth.yaml"))
		}, "is a FIFO"},
		{"symlink to /dev/zero", func(t *testing.T, dir string) {
			mustSymlink(t, "/dev/zero", filepath.Join(dir, "20-auth.yaml"))
		}, "is a character device"},
		{"symlink to /dev/urandom", func(t *testing.T, dir string) {
			mustSymlink(t, "/dev/urandom", filepath.Join(dir, "20-auth.yaml"))
		}, "is a character device"},
		{"directory named *.yaml", func(t *testing.T, dir string) {
			if err := os.Mkdir(filepath.Join(dir, "20-auth.yaml"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, "is a directory"},
		{"symlink to a directory", func(t *testing.T, dir string) {
			mustSymlink(t, t.TempDir(), filepath.Join(dir, "20-auth.yaml"))
		}, "is a directory"},
		{"file over the size cap (sparse)", func(t *testing.T, dir string) {
			f, err := os.Create(filepath.Join(dir, "20-auth.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := f.Truncate(MaxFileSize + 1); err != nil {
				t.Fatal(err)
			}
		}, "16777217 bytes, larger than the 16 MiB limit"},
		{"unix socket", func(t *testing.T, dir string) {
			fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer syscall.Close(fd)
			if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: filepath.Join(dir, "20-auth.yaml")}); err != nil {
				t.Fatal(err)
			}
		}, "is a socket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			mustWrite(t, filepath.Join(dir, "10-svc.yaml"), svcYAML("ok"))
			tc.setup(t, dir)
			_, err := loadWithin(t, dir)
			if err == nil {
				t.Fatal("loaded without error; the entry was skipped silently")
			}
			want := filepath.Join(dir, "20-auth.yaml") + ": " + tc.want
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error = %q, want it to contain %q", err, want)
			}
		})
	}
}

// TestUnreadableFile: a file the process may not read is an error naming
// it. Root reads any file, so there the check cannot be provoked with
// permissions; test/e2e runs the same attack through the binary as nobody.
func TestUnreadableFile(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Log("running as root: permission bits do not stop root; covered by test/e2e TestConfigDirUnreadableFileAsNobody")
		return
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "20-auth.yaml")
	mustWrite(t, path, svcYAML("x"))
	if err := os.Chmod(path, 0); err != nil {
		t.Fatal(err)
	}
	_, err := loadWithin(t, dir)
	if err == nil || !strings.Contains(err.Error(), path+": cannot open: permission denied") {
		t.Fatalf("error = %v, want permission denied naming %s", err, path)
	}
}

// TestNonConfigContentsNeverQuoted links files that are not Flex
// configuration (a shadow file, an ini file, a key, YAML of someone else's)
// into the directory and checks no error repeats what they hold.
func TestNonConfigContentsNeverQuoted(t *testing.T) {
	const marker = "S3CRET-MARKER"
	for name, body := range map[string]string{
		"shadow":        "root:$6$" + marker + "$xyz:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n",
		"ini":           "[default]\naws_secret_access_key = " + marker + "\n",
		"dotenv":        "PASSWORD=" + marker + "\nTOKEN=" + marker + "\n",
		"pem":           "-----BEGIN PRIVATE KEY-----\n" + marker + "\n-----END PRIVATE KEY-----\n",
		"other yaml":    "password: " + marker + "\nkind: " + marker + "\napiVersion: " + marker + "\n",
		"json":          `{"token": "` + marker + `", "kind": "` + marker + `"}`,
		"unknown alias": "a: *" + marker + "\n",
		"quoted scalar": "\"" + marker + "\n",
		"tab indent":    "a:\n\t" + marker + ": 1\n",
		"list":          "- " + marker + "\n- " + marker + "\n",
		"binary":        "\x00\x01" + marker + "\xff\xfe",
		"flow map":      "{" + marker + ": [" + marker,
	} {
		t.Run(name, func(t *testing.T) {
			secret := filepath.Join(t.TempDir(), "secret")
			mustWrite(t, secret, body)
			dir := t.TempDir()
			mustSymlink(t, secret, filepath.Join(dir, "00-x.yaml"))
			_, err := loadWithin(t, dir)
			if err == nil {
				t.Fatal("a non-configuration file was accepted")
			}
			if strings.Contains(err.Error(), marker) {
				t.Fatalf("error quotes the file's contents:\n%v", err)
			}
			if !strings.Contains(err.Error(), filepath.Join(dir, "00-x.yaml")) {
				t.Fatalf("error does not name the file:\n%v", err)
			}
			t.Log(err)
		})
	}
}
