// The arrow-ipc baseline: each morsel's bytes as a record batch written to,
// and read from, an in-memory pipe with arrow-go's IPC stream format.

package exchangebench

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/offheap/offheap/internal/workload/handoff"
)

// schema is one binary column: a record batch carries its morsels as rows.
var schema = arrow.NewSchema([]arrow.Field{{Name: "morsel", Type: arrow.BinaryTypes.Binary}}, nil)

// arrowIPC is a transport from one producer to one consumer through an
// io.Pipe carrying an Arrow IPC stream: the producer builds a record batch
// from its bytes (a copy into the builder) and the writer serialises it
// into the pipe (a copy); the reader reads each message into buffers of its
// own (a copy) and the consumer reads the morsel from them. io.Pipe is
// synchronous, so a write waits for the reader: it holds no more than the
// message being read.
type arrowIPC struct {
	pr   *io.PipeReader
	pw   *io.PipeWriter
	w    *ipc.Writer
	r    *ipc.Reader
	b    *array.BinaryBuilder
	buf  []byte
	held atomic.Int64
	once sync.Once
}

func newArrowIPC(maxMorsel int) *arrowIPC {
	pr, pw := io.Pipe()
	mem := memory.DefaultAllocator
	return &arrowIPC{pr: pr, pw: pw, w: ipc.NewWriter(pw, ipc.WithSchema(schema), ipc.WithAllocator(mem)),
		b: array.NewBinaryBuilder(mem, arrow.BinaryTypes.Binary), buf: make([]byte, maxMorsel)}
}

func (t *arrowIPC) Sender(int) handoff.Sender     { return arrowSender{t} }
func (t *arrowIPC) Receiver(int) handoff.Receiver { return arrowReceiver{t} }
func (t *arrowIPC) Held() int64                   { return t.held.Load() }

// Cancel closes both ends of the pipe: a blocked write or read fails, and
// the batch being written is dropped with it.
func (t *arrowIPC) Cancel() {
	t.once.Do(func() {
		_ = t.pw.CloseWithError(handoff.ErrStopped)
		_ = t.pr.CloseWithError(handoff.ErrStopped)
	})
}

func (t *arrowIPC) Close() error {
	t.Cancel()
	t.b.Release()
	if t.r != nil {
		t.r.Release()
	}
	return nil
}

// send writes the rows rows (morsels) of n bytes each that fill writes as one record batch.
func (t *arrowIPC) send(rows, n int, fill func(int, []byte)) error {
	for i := range rows {
		fill(i, t.buf[:n])
		t.b.Append(t.buf[:n])
	}
	col := t.b.NewArray()
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, int64(rows))
	t.held.Add(int64(rows * n))
	err := t.w.Write(rec)
	if err != nil {
		t.held.Add(-int64(rows * n)) // the pipe is closed: the reader will not see it
	}
	rec.Release()
	col.Release()
	return err
}

// recv reads the next record batch and passes each of its morsels to read.
func (t *arrowIPC) recv(read func([]byte)) error {
	if t.r == nil {
		r, err := ipc.NewReader(t.pr, ipc.WithAllocator(memory.DefaultAllocator))
		if err != nil {
			return eof(err)
		}
		t.r = r
	}
	if !t.r.Next() {
		if err := t.r.Err(); err != nil {
			return err
		}
		return io.EOF
	}
	col := t.r.RecordBatch().Column(0).(*array.Binary)
	for i := range col.Len() {
		v := col.Value(i)
		read(v)
		t.held.Add(-int64(len(v)))
	}
	return nil
}

// eof reports a pipe closed before the stream began as the end of the stream.
func eof(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return io.EOF
	}
	return err
}

type arrowSender struct{ t *arrowIPC }

func (s arrowSender) Send(n int, fill func([]byte)) error {
	return s.t.send(1, n, func(_ int, b []byte) { fill(b) })
}

func (s arrowSender) Close() error {
	err := s.t.w.Close()
	return errors.Join(err, s.t.pw.Close())
}

type arrowReceiver struct{ t *arrowIPC }

func (r arrowReceiver) Recv(read func([]byte)) error { return r.t.recv(read) }

// arrowHandoff is handoff.Handoff for arrow-ipc: b.N morsels of size bytes,
// batch rows to a record batch.
func arrowHandoff(size, batch int) func(*testing.B) {
	return func(b *testing.B) {
		t := newArrowIPC(size)
		defer t.Close()
		b.ReportAllocs()
		b.SetBytes(int64(size))
		done := make(chan error, 1)
		go func() {
			var sum uint64
			for {
				err := t.recv(func(m []byte) { sum += handoff.Sum(m) })
				if err != nil {
					done <- eof(err)
					return
				}
			}
		}()
		b.ResetTimer()
		for s := 0; s < b.N; s += batch {
			if err := t.send(min(batch, b.N-s), size, func(i int, m []byte) { handoff.Fill(m, s+i) }); err != nil {
				b.Fatal(err)
			}
		}
		if err := (arrowSender{t}).Close(); err != nil {
			b.Fatal(err)
		}
		if err := <-done; err != nil && err != io.EOF {
			b.Fatal(err)
		}
	}
}
