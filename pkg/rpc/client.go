package rpc

import (
	"bufio"
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// Client is an ONC RPC client over one TCP connection. Any number of calls
// may be in flight at once; replies are matched to calls by XID, so a slow
// call does not hold up the ones behind it.
type Client struct {
	conn net.Conn
	Cred OpaqueAuth // credential sent with every call

	wmu sync.Mutex // serialises whole records on the wire

	mu      sync.Mutex
	nextXID uint32
	pending map[uint32]chan result
	err     error // set once the connection has failed
	done    chan struct{}
}

type result struct {
	body []byte
	err  error
}

// MaxReply bounds the size of a reply the client accepts.
const MaxReply = 4 << 20

// Dial connects to addr over TCP.
func Dial(ctx context.Context, addr string) (*Client, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return NewClient(c), nil
}

// NewClient runs a client over an established connection.
func NewClient(conn net.Conn) *Client {
	c := &Client{
		conn:    conn,
		Cred:    OpaqueAuth{Flavor: AuthNone},
		nextXID: rand.Uint32(),
		pending: make(map[uint32]chan result),
		done:    make(chan struct{}),
	}
	go c.readLoop()
	return c
}

// LocalAddr returns the client side of the connection.
func (c *Client) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// Close closes the connection; calls in flight fail.
func (c *Client) Close() error {
	err := c.conn.Close()
	<-c.done
	return err
}

func (c *Client) readLoop() {
	defer close(c.done)
	rr := RecordReader{R: bufio.NewReaderSize(c.conn, 64<<10), Max: MaxReply}
	var err error
	for {
		var rec []byte
		rec, err = rr.Read(nil, nil)
		if err != nil {
			break
		}
		r := xdr.NewReader(rec)
		xid, perr := ParseReply(r)
		c.mu.Lock()
		ch, ok := c.pending[xid]
		delete(c.pending, xid)
		c.mu.Unlock()
		if !ok {
			continue // a reply to a call we gave up on
		}
		if perr != nil {
			ch <- result{err: perr}
		} else {
			ch <- result{body: r.Rest()}
		}
	}
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	for xid, ch := range c.pending {
		ch <- result{err: c.err}
		delete(c.pending, xid)
	}
	c.mu.Unlock()
}

// Call sends a call whose arguments args has encoded and waits for its
// reply. It returns the encoded results.
func (c *Client) Call(ctx context.Context, prog, vers, proc uint32, args func(w *xdr.Writer)) ([]byte, error) {
	return c.CallWithCred(ctx, prog, vers, proc, c.Cred, args)
}

// CallWithCred is Call with an explicit credential.
func (c *Client) CallWithCred(ctx context.Context, prog, vers, proc uint32, cred OpaqueAuth, args func(w *xdr.Writer)) ([]byte, error) {
	ch := make(chan result, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	c.nextXID++
	xid := c.nextXID
	c.pending[xid] = ch
	c.mu.Unlock()

	w := xdr.NewWriter(256)
	w.Uint32(0) // record mark, filled below
	WriteCall(w, xid, prog, vers, proc, cred)
	if args != nil {
		args(w)
	}
	rec := w.Bytes()
	MarkRecord(rec)

	c.wmu.Lock()
	if dl, ok := ctx.Deadline(); ok {
		c.conn.SetWriteDeadline(dl)
	} else {
		c.conn.SetWriteDeadline(time.Time{})
	}
	_, err := c.conn.Write(rec)
	c.wmu.Unlock()
	if err != nil {
		c.forget(xid)
		return nil, err
	}
	select {
	case res := <-ch:
		return res.body, res.err
	case <-ctx.Done():
		c.forget(xid)
		return nil, ctx.Err()
	}
}

func (c *Client) forget(xid uint32) {
	c.mu.Lock()
	delete(c.pending, xid)
	c.mu.Unlock()
}

// ErrClosed is returned for calls on a client whose connection has ended.
var ErrClosed = errors.New("rpc: connection closed")
