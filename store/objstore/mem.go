package objstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
)

// Mem is an in-memory ObjectStore for tests. It honours the whole contract,
// including all-or-nothing Put.
type Mem struct {
	mu      sync.RWMutex
	objects map[string][]byte // stored slices are never modified
}

var _ ObjectStore = (*Mem)(nil)

// NewMem returns an empty in-memory store.
func NewMem() *Mem {
	return &Mem{objects: make(map[string][]byte)}
}

// Put implements ObjectStore.
func (m *Mem) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := ValidateName(name); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	if size < 0 {
		return fmt.Errorf("put %s: negative size %d: %w", name, size, ErrSizeMismatch)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	var buf bytes.Buffer
	if size <= 64<<20 {
		buf.Grow(int(size))
	}
	if _, err := buf.ReadFrom(NewExactReader(ctx, r, size)); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	m.mu.Lock()
	m.objects[name] = buf.Bytes()
	m.mu.Unlock()
	return nil
}

// GetRange implements ObjectStore.
func (m *Mem) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	data, err := m.get(ctx, "get", name)
	if err != nil {
		return nil, err
	}
	n, err := CheckRange(name, int64(len(data)), off, length)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(data[off : off+n])), nil
}

// Stat implements ObjectStore.
func (m *Mem) Stat(ctx context.Context, name string) (ObjectInfo, error) {
	data, err := m.get(ctx, "stat", name)
	if err != nil {
		return ObjectInfo{}, err
	}
	return ObjectInfo{Name: name, Size: int64(len(data))}, nil
}

func (m *Mem) get(ctx context.Context, op, name string) ([]byte, error) {
	if err := ValidateName(name); err != nil {
		return nil, fmt.Errorf("%s %s: %w", op, name, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s %s: %w", op, name, err)
	}
	m.mu.RLock()
	data, ok := m.objects[name]
	m.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%s %s: %w", op, name, ErrNotFound)
	}
	return data, nil
}

// List implements ObjectStore. It lists a snapshot in name order, calling fn
// without holding the lock so fn may use the store.
func (m *Mem) List(ctx context.Context, fn func(ObjectInfo) error) error {
	m.mu.RLock()
	infos := make([]ObjectInfo, 0, len(m.objects))
	for name, data := range m.objects {
		infos = append(infos, ObjectInfo{Name: name, Size: int64(len(data))})
	}
	m.mu.RUnlock()
	slices.SortFunc(infos, func(a, b ObjectInfo) int { return strings.Compare(a.Name, b.Name) })
	for _, info := range infos {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("list: %w", err)
		}
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

// Delete implements ObjectStore.
func (m *Mem) Delete(ctx context.Context, name string) error {
	if err := ValidateName(name); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objects[name]; !ok {
		return fmt.Errorf("delete %s: %w", name, ErrNotFound)
	}
	delete(m.objects, name)
	return nil
}
