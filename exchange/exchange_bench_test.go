package exchange_test

import (
	"context"
	"encoding/binary"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/offheap/offheap/exchange"
	"github.com/offheap/offheap/pool"
)

const morselLen = 64

var template [morselLen]byte

// fill writes a morsel: the template, then its sequence number in the first 8 bytes.
func fill(b []byte, v int) {
	copy(b, template[:])
	binary.LittleEndian.PutUint64(b, uint64(v))
}

func seq(b []byte) int { return int(binary.LittleEndian.Uint64(b)) }

// cpuTime returns the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkHandoff(b *testing.B) {
	b.Run("offheap", func(b *testing.B) {
		p, _ := pool.New(64<<20, nil)
		defer p.Close()
		x, _ := exchange.New(context.Background(), p, &exchange.Options{Budget: 1 << 20})
		defer x.Close()
		pr, _ := x.Producer()
		co, _ := x.Consumer()
		b.ReportAllocs()
		b.SetBytes(morselLen)
		done := make(chan int)
		go func() {
			s := 0
			for {
				m, err := co.Recv()
				if err == io.EOF {
					break
				}
				s += seq(m.Bytes())
				co.Release(m)
			}
			done <- s
		}()
		for i := range b.N {
			m, _ := pr.Reserve(morselLen)
			fill(m.Bytes(), i)
			pr.Send(m)
		}
		pr.Close()
		<-done
	})
	b.Run("chan-ref", func(b *testing.B) {
		p, _ := pool.New(64<<20, nil)
		defer p.Close()
		ch := make(chan pool.Ref, 1024)
		b.ReportAllocs()
		b.SetBytes(morselLen)
		done := make(chan int)
		go func() {
			s := 0
			for r := range ch {
				v, _ := p.Latch(r)
				s += seq(v)
				p.Unlatch(r)
				p.Release(r)
			}
			done <- s
		}()
		for i := range b.N {
			r, v, _ := p.Reserve(morselLen)
			fill(v, i)
			p.Unlatch(r)
			ch <- r
		}
		close(ch)
		<-done
	})
	b.Run("chan-bytes", func(b *testing.B) {
		ch := make(chan []byte, 1024)
		b.ReportAllocs()
		b.SetBytes(morselLen)
		done := make(chan int)
		go func() {
			s := 0
			for v := range ch {
				s += seq(v)
			}
			done <- s
		}()
		for i := range b.N {
			v := make([]byte, morselLen)
			fill(v, i)
			ch <- v
		}
		close(ch)
		<-done
	})
}

func BenchmarkHandoffWaits(b *testing.B) {
	p, _ := pool.New(64<<20, nil)
	defer p.Close()
	x, _ := exchange.New(context.Background(), p, &exchange.Options{Budget: 1 << 20})
	defer x.Close()
	pr, _ := x.Producer()
	co, _ := x.Consumer()
	done := make(chan int)
	go func() {
		s := 0
		for {
			m, err := co.Recv()
			if err == io.EOF {
				break
			}
			s += seq(m.Bytes())
			co.Release(m)
		}
		done <- s
	}()
	for i := range b.N {
		m, _ := pr.Reserve(morselLen)
		fill(m.Bytes(), i)
		pr.Send(m)
	}
	pr.Close()
	<-done
	st := x.Stats()
	b.ReportMetric(float64(st.Waits)/float64(b.N), "waits/op")
}

// BenchmarkCycleOne runs a morsel's whole life in one goroutine: the
// instructions of a hand-off without the cache-line transfers.
func BenchmarkCycleOne(b *testing.B) {
	b.Run("offheap", func(b *testing.B) {
		p, _ := pool.New(64<<20, nil)
		defer p.Close()
		x, _ := exchange.New(context.Background(), p, &exchange.Options{Budget: 1 << 20})
		defer x.Close()
		pr, _ := x.Producer()
		co, _ := x.Consumer()
		b.ReportAllocs()
		s := 0
		for i := range b.N {
			m, _ := pr.Reserve(morselLen)
			fill(m.Bytes(), i)
			pr.Send(m)
			m, _ = co.Recv()
			s += seq(m.Bytes())
			co.Release(m)
		}
	})
	b.Run("chan-ref", func(b *testing.B) {
		p, _ := pool.New(64<<20, nil)
		defer p.Close()
		ch := make(chan pool.Ref, 1024)
		b.ReportAllocs()
		s := 0
		for i := range b.N {
			r, v, _ := p.Reserve(morselLen)
			fill(v, i)
			p.Unlatch(r)
			ch <- r
			r = <-ch
			v, _ = p.Latch(r)
			s += seq(v)
			p.Unlatch(r)
			p.Release(r)
		}
	})
}
