package localdb

import (
	"context"
	"database/sql"
	"sync"
)

// stmtCache keeps prepared statements: parsing SQL costs more than running
// these small queries, and the node table is queried on every FUSE call.
type stmtCache struct {
	db     runner // a pool, or the batch's connection
	mu     sync.Mutex
	m      map[string]*sql.Stmt
	closed bool
	bg     sync.WaitGroup // prepareLater's goroutines
}

// runner runs statements: a *sql.DB (a pool), a *sql.Conn or a *sql.Tx.
type runner interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
}

func newStmtCache(db runner) *stmtCache { return &stmtCache{db: db, m: map[string]*sql.Stmt{}} }

func (c *stmtCache) get(ctx context.Context, q string) *sql.Stmt {
	if s := c.cached(q); s != nil {
		return s
	}
	// Prepared without holding mu: preparing may wait for a connection,
	// and transactions look up statements while holding one.
	s, err := c.db.PrepareContext(ctx, q)
	if err != nil {
		return nil // the caller runs the query unprepared, which reports the error
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[q]; ok || c.m == nil {
		_ = s.Close() // prepared twice, or closed meanwhile
		return old
	}
	c.m[q] = s
	return s
}

// cached returns a statement only if it is already prepared.
func (c *stmtCache) cached(q string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[q]
}

// prepareLater prepares q in the background, unless the cache is closing.
func (c *stmtCache) prepareLater(ctx context.Context, q string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		c.get(ctx, q)
	}()
}

// close waits for background prepares (one still running could open a
// connection, and files beside the database, after Close returned) and
// closes the statements.
func (c *stmtCache) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.bg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.m {
		_ = s.Close()
	}
	c.m = nil
}

// cq runs queries through cached statements: on the pool or the batch's
// connection (c alone), or in a transaction (tx, with c the pool's).
//
// Statements run without their caller's cancellation (uncancelable):
// for a context that can end, the SQLite driver starts a goroutine per
// statement to interrupt it, and database/sql one per row set. These
// statements take microseconds, and the mount runs a few for every FUSE
// request: the goroutines and their wake-ups cost more than the queries.
type cq struct {
	c   *stmtCache
	tx  *sql.Tx
	rec *recorder // logs successful writes when set
}

func uncancelable(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

func (q cq) stmt(ctx context.Context, query string) *sql.Stmt {
	if q.tx == nil {
		return q.c.get(ctx, query)
	}
	s := q.c.cached(query)
	if s == nil {
		// Preparing on the pool takes another connection, which can wait
		// for the write lock this transaction holds (a stall of the busy
		// timeout, then "database is locked"). Run it unprepared here, and
		// prepare it for next time outside any transaction.
		q.c.prepareLater(context.WithoutCancel(ctx), query)
		return nil
	}
	return q.tx.StmtContext(ctx, s)
}

func (q cq) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	ctx = uncancelable(ctx)
	if s := q.stmt(ctx, query); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	if q.tx != nil {
		return q.tx.QueryRowContext(ctx, query, args...)
	}
	return q.c.db.QueryRowContext(ctx, query, args...)
}

func (q cq) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ctx = uncancelable(ctx)
	if s := q.stmt(ctx, query); s != nil {
		return s.QueryContext(ctx, args...)
	}
	if q.tx != nil {
		return q.tx.QueryContext(ctx, query, args...)
	}
	return q.c.db.QueryContext(ctx, query, args...)
}

func (q cq) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx = uncancelable(ctx)
	var res sql.Result
	var err error
	if s := q.stmt(ctx, query); s != nil {
		res, err = s.ExecContext(ctx, args...)
	} else if q.tx != nil {
		res, err = q.tx.ExecContext(ctx, query, args...)
	} else {
		res, err = q.c.db.ExecContext(ctx, query, args...)
	}
	if err == nil && q.rec != nil {
		// A statement that failed changed nothing: only successes are logged.
		err = q.rec.add(query, args)
	}
	return res, err
}
