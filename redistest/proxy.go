package redistest

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy is a TCP proxy to Redis that a fault test can cut in two ways, Refuse (every
// connection closed, new ones refused: Redis down) and Blackhole (every connection
// closed, new ones accepted but never answered: Redis frozen, or a partition), and
// Restore: a real outage for the clients that go through it, without touching the
// Redis other tests share.
type Proxy struct {
	t      testing.TB
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	mode  string // "", "blackhole"
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewProxy forwards a new loopback address (Addr) to target until the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p := &Proxy{t: t, target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(func() { p.Refuse(); p.wg.Wait() })
	return p
}

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.ln != ln {
				p.mu.Unlock()
				c.Close()
				continue
			}
			if p.mode == "blackhole" {
				p.conns[c] = struct{}{} // held open, never answered
				p.mu.Unlock()
				continue
			}
			p.mu.Unlock()
			up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[up] = struct{}{}, struct{}{}
			p.mu.Unlock()
			pipe := func(dst, src net.Conn) {
				defer p.wg.Done()
				_, _ = io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			p.wg.Add(2)
			go pipe(up, c)
			go pipe(c, up)
		}
	}()
}

func (p *Proxy) closeConns() {
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// Addr is the address clients connect to.
func (p *Proxy) Addr() string { return p.addr }

// Refuse closes every connection and the listener: clients get resets, then refusals.
func (p *Proxy) Refuse() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeConns()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
}

// Blackhole closes every connection and holds new ones open without an answer.
func (p *Proxy) Blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeConns()
	p.mode = "blackhole"
}

// Restore forwards again, on the same address.
func (p *Proxy) Restore() {
	p.t.Helper()
	p.mu.Lock()
	blackholed := p.mode == "blackhole"
	p.mode = ""
	if blackholed {
		p.closeConns()
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	var ln net.Listener
	var err error
	for range 100 {
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatalf("proxy: listening again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}
