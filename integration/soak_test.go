package integration

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSoakThreeDevices: three devices make seeded random changes at the same
// time (create, overwrite, append, delete, rename, mkdir, read) in rounds, with
// background commits and pushes in between, for two minutes; then all
// three must converge to identical trees. Nothing here checks which edit
// wins a conflict, only that the devices agree and nothing breaks.
func TestSoakThreeDevices(t *testing.T) {
	const opsPerRound = 40
	budget := 2 * time.Minute
	if testing.Short() {
		budget = 5 * time.Second
	}
	srv := startDriveServer(t)
	devs := []*driveHome{srv.newHome(t, "soak@example.com").signup()}
	devs[0].mount()
	for range 2 {
		h := srv.newHome(t, "soak@example.com").login()
		h.mount()
		devs = append(devs, h)
	}

	rngs := make([]*rand.Rand, len(devs))
	for i := range devs {
		rngs[i] = rand.New(rand.NewPCG(uint64(i)+100, 42))
	}
	start := time.Now()
	for round := 0; round == 0 || time.Since(start) < budget; round++ {
		var wg sync.WaitGroup
		errs := make(chan error, len(devs))
		for i, h := range devs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rngs[i]
				for n := range opsPerRound {
					if err := randomOp(rng, h.mnt, fmt.Sprintf("d%d-r%d-%d", i, round, n)); err != nil {
						errs <- fmt.Errorf("device %d round %d op %d: %w", i, round, n, err)
						return
					}
					time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		// Let the committers' debounce fire and pushes arrive mid-soak.
		time.Sleep(1500 * time.Millisecond)
	}
	for _, h := range devs {
		h.sync()
	}
	var want string
	driveWait(t, "three devices converged", func() bool {
		var sums []string
		for _, h := range devs {
			s, err := treeDigest(h.mnt)
			if err != nil {
				return false
			}
			sums = append(sums, s)
		}
		want = sums[0]
		return sums[0] == sums[1] && sums[1] == sums[2]
	})
	if !strings.Contains(want, "\n") {
		t.Fatalf("converged on an empty tree:\n%s", want)
	}
}

// randomOp applies one random change under root. Errors a concurrent
// device can cause (the target vanished) are not failures.
func randomOp(rng *rand.Rand, root, tag string) error {
	files, dirs := listTree(root)
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	ignore := func(err error) error {
		if err == nil || os.IsNotExist(err) || os.IsExist(err) {
			return nil
		}
		if pe, ok := err.(*os.PathError); ok && (strings.Contains(pe.Err.Error(), "directory not empty") || strings.Contains(pe.Err.Error(), "not a directory")) {
			return nil
		}
		if le, ok := err.(*os.LinkError); ok && (os.IsNotExist(le.Err) || strings.Contains(le.Err.Error(), "directory not empty")) {
			return nil
		}
		return err
	}
	content := func() []byte {
		b := make([]byte, rng.IntN(64<<10))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	switch op := rng.IntN(11); {
	case op < 3 || len(files) == 0: // create
		return ignore(os.WriteFile(filepath.Join(pick(dirs), tag+".bin"), content(), 0o644))
	case op < 5: // overwrite
		return ignore(os.WriteFile(pick(files), content(), 0o644))
	case op < 6: // append
		f, err := os.OpenFile(pick(files), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return ignore(err)
		}
		_, err = f.Write(content())
		return ignore(errorsJoin(err, f.Close()))
	case op < 7: // delete
		return ignore(os.Remove(pick(files)))
	case op < 8: // rename a file into some folder
		return ignore(os.Rename(pick(files), filepath.Join(pick(dirs), tag+"-moved.bin")))
	case op < 9: // mkdir
		return ignore(os.Mkdir(filepath.Join(pick(dirs), tag+"-dir"), 0o755))
	case op < 10: // read a file whole: a row the committer broke reads EIO
		_, err := os.ReadFile(pick(files))
		return ignore(err)
	default: // remove an empty folder
		if len(dirs) > 1 {
			return ignore(os.Remove(dirs[1+rng.IntN(len(dirs)-1)]))
		}
		return nil
	}
}

func errorsJoin(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func listTree(root string) (files, dirs []string) {
	dirs = []string{root}
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return nil
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		} else if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	return files, dirs
}

// treeDigest describes a tree: every path with its kind and content hash.
func treeDigest(root string) (string, error) {
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			fmt.Fprintf(&b, "%s/\n", rel)
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %x\n", rel, sha256.Sum256(data))
		return nil
	})
	return b.String(), err
}
