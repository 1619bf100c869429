package app

import "sync"

// queue is a work queue of load balancer ids: an id is queued at most once,
// and never handed to two workers at once (a kick while it is being
// reconciled queues it again for afterwards).
type queue struct {
	mu         sync.Mutex
	cond       *sync.Cond
	items      []string
	dirty      map[string]bool
	processing map[string]bool
	closed     bool
}

func newQueue() *queue {
	q := &queue{dirty: map[string]bool{}, processing: map[string]bool{}}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *queue) add(id string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.dirty[id] {
		return
	}
	q.dirty[id] = true
	if !q.processing[id] {
		q.items = append(q.items, id)
		q.cond.Signal()
	}
}

func (q *queue) get() (string, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return "", false
	}
	id := q.items[0]
	q.items = q.items[1:]
	delete(q.dirty, id)
	q.processing[id] = true
	return id, true
}

func (q *queue) done(id string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.processing, id)
	if q.dirty[id] && !q.closed {
		q.items = append(q.items, id)
		q.cond.Signal()
	}
}

func (q *queue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.cond.Broadcast()
}
