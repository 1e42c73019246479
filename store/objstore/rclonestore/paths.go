package rclonestore

import (
	"io"

	"github.com/anysync/anysync/store/objstore"
)

// lengthReader fails with io.ErrUnexpectedEOF if the backend's stream ends
// before want bytes, so a truncated response is never taken for data.
type lengthReader struct {
	rc   io.ReadCloser
	want int64
}

func (l *lengthReader) Read(p []byte) (int, error) {
	if l.want <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > l.want {
		p = p[:l.want]
	}
	n, err := l.rc.Read(p)
	l.want -= int64(n)
	if err == io.EOF && l.want > 0 {
		return n, io.ErrUnexpectedEOF
	}
	if err == io.EOF {
		return n, nil
	}
	return n, err
}

func (l *lengthReader) Close() error { return l.rc.Close() }

// shardPath is where an object lives inside a backend: the last two
// characters of the name as a folder, so no folder holds more than a small
// fraction of a huge account. The last, not the first: callers may prefix
// names with an account ID, which would put a whole account in one folder.
func shardPath(name string) string {
	return shardOf(name) + "/" + name
}

func shardOf(name string) string {
	return name[max(0, len(name)-2):]
}

// nameFromPath inverts shardPath; ok is false for anything else found in the
// backend (temporary files, foreign files), which listings skip.
func nameFromPath(p string) (name string, ok bool) {
	for i := 0; i < len(p); i++ {
		if p[i] != '/' {
			continue
		}
		dir, name := p[:i], p[i+1:]
		if objstore.ValidateName(name) != nil || dir != shardOf(name) {
			return "", false
		}
		return name, true
	}
	return "", false
}
