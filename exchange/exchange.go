// Package exchange hands morsels (pool segments) from producer goroutines to
// consumer goroutines without copying them: a producer reserves a segment in
// a pool.Pool, fills it in place and sends it; a consumer receives it, reads
// it through a pinned view and releases it. Ownership moves with the morsel,
// the bytes in flight are bounded by a budget, and closing or cancelling the
// exchange gives every byte back to the pool. See Exchange for the design.
package exchange

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/offheap/offheap/internal/check"
	"github.com/offheap/offheap/pool"
)

// Errors returned by the exchange, wrapped with context; test for them with
// errors.Is. A receive after the producers have closed and the queue is
// drained returns io.EOF itself, unwrapped.
var (
	ErrForeign  = errors.New("not a morsel of this exchange")      // the zero Morsel, another exchange's, or a forged one
	ErrSent     = errors.New("sent already")                       // a producer's handle used after Send
	ErrReleased = errors.New("released already")                   // a handle used after Release or Discard
	ErrWrongEnd = errors.New("held by another end")                // a producer's morsel given to a consumer, or the reverse
	ErrClosed   = errors.New("closed")                             // the exchange, or this end, is closed
	ErrCanceled = errors.New("canceled")                           // the exchange's context was cancelled
	ErrNoReader = errors.New("no consumer left")                   // every consumer the morsel could reach has closed
	ErrInvalid  = errors.New("invalid argument")                   // bad options, sizes or partitions
	ErrLeaked   = errors.New("closed with morsels never released") // checked build: Close found morsels still held
)

// Topology says which consumers see a morsel.
type Topology int

const (
	// Shared is one queue: each morsel goes to whichever consumer takes it next.
	Shared Topology = iota
	// Partitioned is one queue per consumer: the producer names the
	// partition (consumer) of each morsel with SendTo.
	Partitioned
	// Broadcast delivers every morsel to every consumer; its segment is
	// freed once, after the last consumer releases it.
	Broadcast
)

// String returns the topology's name in lower case, as Options print it.
func (t Topology) String() string {
	switch t {
	case Shared:
		return "shared"
	case Partitioned:
		return "partitioned"
	case Broadcast:
		return "broadcast"
	}
	return fmt.Sprintf("Topology(%d)", int(t))
}

// Options configure an exchange. A nil *Options means the zero value.
type Options struct {
	Name      string   // labels errors and stats
	Topology  Topology // Shared, Partitioned or Broadcast
	Producers int      // producer ends; 0 means 1
	Consumers int      // consumer ends (partitions, when Partitioned); 0 means 1; at most 32 for Broadcast
	// Budget bounds the bytes in flight: morsels sent and not yet released.
	// A producer blocks in Send while a morsel would take them over the
	// budget (a morsel alone is always let through), so they never exceed
	// it by more than one morsel. A morsel counts its segment's size (see
	// Stats.Held). Released segments kept for reuse take at most half as
	// much again. 0 means 32 MiB.
	Budget int
	// PartitionBudget bounds the bytes sent to one partition and not yet
	// released (Partitioned only), in the same way; 0 means Budget.
	PartitionBudget int
	// QueueLen is how many morsels one queue holds: a power of two, 0 means 1024.
	QueueLen int
	// Coalesce, if positive, makes a producer copy each morsel shorter than
	// Coalesce bytes into an open morsel of Coalesce bytes for its
	// destination, and send that one when the next would not fit, at Flush,
	// or at Close. The consumer sees the short morsels' bytes concatenated.
	Coalesce int
}

const (
	defaultBudget   = 32 << 20
	defaultQueueLen = 1024
	maxBroadcast    = 32 // consumers of a broadcast: bits in a record's word
	maxEnds         = 1 << 16
	stashLen        = 64 // a producer's own stash of discarded records
)

// Exchange moves morsels from producers to consumers. Create it with New,
// take its ends with Producer and Consumer, one per goroutine, and Close it
// when they are done.
//
// # Morsels and records
//
// A morsel is a pool segment the exchange reserves latched (pool.Reserve)
// and keeps latched until the segment goes back to the pool, so its address
// never moves and views need no per-morsel pinning. Each morsel has a record
// in tables of plain structs, a part for each side so that each writes only
// its own (see segInfo); handles (Morsel) carry the record's index and a
// generation, and every change of owner bumps the generation, so a handle
// used after it was sent or released is recognised in O(1) and the
// morsel's new owner is never touched. A released record keeps its segment
// and goes to a free ring, from which the next Reserve of a similar size
// takes it: in a steady state a morsel's whole life (reserve, fill, send,
// receive, read, release) makes no pool call and takes no lock, and a
// Shared exchange without coalescing runs it on fast paths of a few dozen
// instructions a side (fast.go).
//
// # Queues
//
// Queues carry record indices. With one producer and one consumer a queue is
// a Lamport ring with cached cursors (spsc): each side writes its own cache
// line and reads the other's only when its cached copy says full or empty.
// Otherwise it is a Vyukov ring (mpmc), whose sides claim cells with a CAS
// only when they have several members. Shared has one queue, Partitioned one
// per partition, Broadcast one per consumer (the producer pushes each morsel
// to all). Batches claim and publish many cells at once.
//
// # Budget
//
// The bytes in flight are counted as sent minus released: a lone producer
// adds to sent when Send admits a morsel; several producers lease the
// budget in chunks with an atomic add and spend it locally (see lease);
// each consumer counts the bytes it releases, and a producer the admitted
// bytes it had to drop. Every other counter has one writer, on its own
// cache line, and a producer reads the others only when its cached sum says
// the budget is reached, and then parks until a release signals it. Partition budgets count bytes sent to a partition minus those
// its consumer released. Released segments wait in the free rings, which
// hold half a budget at most (see freeRings). A slow consumer therefore
// never makes the exchange's memory grow.
//
// # Parking
//
// Nothing spins for long. A producer that finds no room, or a consumer no
// morsel, checks a few times and then parks on an event: a waiter count and a
// channel. Signalling costs the other side one load of the waiter count; the
// lost wake-up that a plain store followed by that load could cause is
// closed by an asymmetric fence (membarrier(2) on Linux) that the parking
// side pays (see fence).
//
// # Ends, closing and cancellation
//
// Producer and Consumer ends are not safe for concurrent use; the Exchange
// is. Each end marks itself busy in every operation that touches a queue or
// the free rings. Cancellation (the context given to New, or Close) marks the
// exchange stopped, wakes every parked end, waits until no end is busy, and
// then returns to the pool every morsel no end holds: those queued, those in
// the free rings and the producers' open coalescing morsels. Morsels an end
// holds stay valid, because their views may be in use; they go back to the
// pool when the end sends, releases or discards them (Send then fails with
// ErrCanceled or ErrClosed). So once every end has handed back what it held,
// the pool's bytes in use are what they were before New, and no goroutine is
// left: the exchange starts none but the one context.AfterFunc runs at
// cancellation.
//
// # Invariants
//
// Checked in the checked build (-tags offheapcheck):
//   - the bytes in flight (sent minus released) never exceed Budget plus one
//     morsel, nor a partition's PartitionBudget plus one morsel;
//   - every record is in exactly one state (free, held by a producer,
//     queued, received) and only the transitions Reserve, Send, receive,
//     Release and Discard move it;
//   - a segment is latched exactly once while the exchange keeps it.
type Exchange struct {
	// Read by every end, written only by New and stop.
	pool     *pool.Pool
	id       uint32
	name     string
	topo     Topology
	budget   uint64
	partCap  uint64
	coalesce uint32
	multiP   bool   // several producers
	chunk    uint64 // several producers: the budget a producer leases at once
	oneToOne bool   // Shared, one producer, one consumer, no coalescing, not the checked build: the batch fast paths apply
	simple   bool   // Shared, no coalescing, not the checked build: the fast paths apply
	queues   []*queue
	free     *freeRings // released records with their segments, for reuse
	prods    []*Producer
	cons     []*Consumer
	base     atomic.Pointer[byte] // the pool's base address, learnt from the first segment
	stopped  uint32               // atomic: 0 open, else stopCanceled or stopClosed
	ended    uint32               // atomic: every producer has closed
	stopCh   chan struct{}        // closed by stop
	sweptCh  chan struct{}        // closed once stop has returned what no end holds
	endCh    chan struct{}        // closed when the last producer closes
	_        [64]byte

	sent uint64 // bytes admitted by Send; one producer writes it, or several CAS it
	_    [56]byte

	space event      // producers waiting for the budget
	alone sync.Mutex // several producers: held to send a morsel alone (spendAlone)
	recs  records

	stopErr error  // why the exchange stopped; set before stopped
	swept   uint64 // bytes stop returned to the pool
	_       [48]byte

	mu          sync.Mutex // guards what follows
	handedP     int
	handedC     int
	liveP       int // producers not yet closed
	liveC       int // consumers not yet closed
	closeCalled bool
	stopContext func() bool
}

const (
	stopCanceled = 1
	stopClosed   = 2
)

var lastID atomic.Uint32

// New opens an exchange over p. Cancelling ctx cancels the exchange (see
// Exchange); opts may be nil.
func New(ctx context.Context, p *pool.Pool, opts *Options) (*Exchange, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if err := validate(ctx, p, &o); err != nil {
		return nil, fmt.Errorf("%s: new: %w", label(o.Name), err)
	}
	x := &Exchange{
		pool:     p,
		id:       lastID.Add(1),
		name:     o.Name,
		topo:     o.Topology,
		budget:   uint64(o.Budget),
		partCap:  uint64(o.PartitionBudget),
		coalesce: uint32(o.Coalesce),
		multiP:   o.Producers > 1,
		chunk:    uint64(min(max(o.Budget/(4*o.Producers), minSegment), 1<<20)),
		oneToOne: o.Topology == Shared && o.Producers == 1 && o.Consumers == 1 && o.Coalesce == 0 && !check.On,
		simple:   o.Topology == Shared && o.Coalesce == 0 && !check.On,
		stopCh:   make(chan struct{}),
		sweptCh:  make(chan struct{}),
		endCh:    make(chan struct{}),
		liveP:    o.Producers,
		liveC:    o.Consumers,
	}
	x.space.init(o.Producers)
	x.makeQueues(o)
	x.recs.init(maxRecords(o))
	x.prods = make([]*Producer, o.Producers)
	for i := range x.prods {
		x.prods[i] = newProducer(x, i)
	}
	x.cons = make([]*Consumer, o.Consumers)
	for i := range x.cons {
		x.cons[i] = newConsumer(x, i)
	}
	x.stopContext = context.AfterFunc(ctx, func() { x.stop(stopCanceled, context.Cause(ctx)) })
	return x, nil
}

func validate(ctx context.Context, p *pool.Pool, o *Options) error {
	if o.Producers == 0 {
		o.Producers = 1
	}
	if o.Consumers == 0 {
		o.Consumers = 1
	}
	if o.Budget == 0 {
		o.Budget = defaultBudget
	}
	if o.PartitionBudget == 0 || o.Topology != Partitioned {
		o.PartitionBudget = o.Budget
	}
	if o.QueueLen == 0 {
		o.QueueLen = defaultQueueLen
	}
	var err error
	switch {
	case ctx == nil || p == nil:
		err = errors.New("nil context or pool")
	case o.Topology < Shared || o.Topology > Broadcast:
		err = fmt.Errorf("unknown topology %d", int(o.Topology))
	case o.Producers < 0 || o.Producers > maxEnds || o.Consumers < 0 || o.Consumers > maxEnds:
		err = fmt.Errorf("%d producers and %d consumers: each must be 1 to %d", o.Producers, o.Consumers, maxEnds)
	case o.Topology == Broadcast && o.Consumers > maxBroadcast:
		err = fmt.Errorf("%d consumers of a broadcast: at most %d", o.Consumers, maxBroadcast)
	case o.Budget < 0 || o.PartitionBudget < 0:
		err = fmt.Errorf("budget %d or partition budget %d is negative", o.Budget, o.PartitionBudget)
	case o.QueueLen < 2 || o.QueueLen > 1<<24 || o.QueueLen&(o.QueueLen-1) != 0:
		err = fmt.Errorf("queue length %d is not a power of two from 2 to 2^24", o.QueueLen)
	case o.Coalesce < 0 || o.Coalesce > maxMorsel:
		err = fmt.Errorf("coalesce %d is negative or over %d", o.Coalesce, maxMorsel)
	}
	if err != nil {
		return fmt.Errorf("%v: %w", err, ErrInvalid)
	}
	return nil
}

// maxRecords bounds the record table: every morsel the budget and the queues
// can hold, the free rings and the stashes, and room for morsels the ends hold.
func maxRecords(o Options) int {
	n := o.Budget/minSegment + 2*o.QueueLen*(len(queuesOf(o))+1) + (o.Producers+o.Consumers)*(stashLen+chunkLen)
	return min(n, 1<<30)
}

// queuesOf returns how many queues the topology has (as a slice of their
// readers' counts, for makeQueues).
func queuesOf(o Options) []int {
	if o.Topology == Shared {
		return []int{o.Consumers}
	}
	r := make([]int, o.Consumers)
	for i := range r {
		r[i] = 1
	}
	return r
}

func (x *Exchange) makeQueues(o Options) {
	for _, readers := range queuesOf(o) {
		x.queues = append(x.queues, newQueue(o.QueueLen, o.Producers, readers))
	}
	// The free rings must hold every record in circulation, or releases
	// spill to the pool and reserves come from it: all the queues can hold,
	// the producers' stashes, and a morsel in every end's hands.
	x.free = newFreeRings(len(x.queues)*o.QueueLen+(o.Producers+o.Consumers)*stashLen, o.Budget/2, o.Producers, o.Consumers)
}

// queueLen rounds n up to a power of two.
func queueLen(n int) int {
	q := 2
	for q < n {
		q <<= 1
	}
	return q
}

// Producer hands out the next producer end; each of Options.Producers ends
// once. An end belongs to one goroutine at a time.
func (x *Exchange) Producer() (*Producer, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.handedP == len(x.prods) {
		return nil, x.errorf("producer", fmt.Errorf("all %d handed out: %w", len(x.prods), ErrInvalid))
	}
	x.handedP++
	return x.prods[x.handedP-1], nil
}

// Consumer hands out the next consumer end; each of Options.Consumers ends
// once. With Partitioned, the i-th end handed out reads partition i.
func (x *Exchange) Consumer() (*Consumer, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.handedC == len(x.cons) {
		return nil, x.errorf("consumer", fmt.Errorf("all %d handed out: %w", len(x.cons), ErrInvalid))
	}
	x.handedC++
	return x.cons[x.handedC-1], nil
}

// Close cancels the exchange (see Exchange) with ErrClosed, unless its
// context was cancelled first, and returns once what no end holds is back
// in the pool. Ends parked in Send or Recv return at once. In the checked
// build, Close reports morsels the ends still hold with ErrLeaked. A second
// Close returns ErrClosed.
func (x *Exchange) Close() error {
	x.mu.Lock()
	again := x.closeCalled
	x.closeCalled = true
	x.mu.Unlock()
	if again {
		return x.errorf("close", ErrClosed)
	}
	x.stop(stopClosed, nil)
	<-x.sweptCh // a cancellation may be sweeping in its own goroutine
	x.stopContext()
	return x.leaks()
}

// label names an exchange in errors: the package, and its name quoted if it has one.
func label(name string) string {
	if name == "" {
		return "exchange"
	}
	return fmt.Sprintf("exchange %q", name)
}

// errorf wraps err with the exchange and the operation.
func (x *Exchange) errorf(op string, err error) error {
	return fmt.Errorf("%s: %s: %w", label(x.name), op, err)
}

// morselError wraps err with the exchange, the operation and the morsel.
func (x *Exchange) morselError(op string, m Morsel, err error) error {
	return fmt.Errorf("%s: %s morsel %v: %w", label(x.name), op, m, err)
}
