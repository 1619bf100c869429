package runtime

import "sync"

type outMsg struct {
	subject  string
	data     []byte
	attempts int
}

// outbox is the bounded queue between the agent and the bus. Reports
// (applied, health) go first and are dropped only beyond their own large
// bound; samples are dropped oldest first. push never blocks.
type outbox struct {
	mu         sync.Mutex
	reports    []outMsg
	samples    []outMsg
	maxReports int
	maxSamples int
	dropped    uint64
	notify     chan struct{}
}

func newOutbox(maxReports, maxSamples int) *outbox {
	return &outbox{maxReports: maxReports, maxSamples: maxSamples, notify: make(chan struct{}, 1)}
}

func (o *outbox) push(m outMsg, sample bool) {
	o.mu.Lock()
	if sample {
		if len(o.samples) >= o.maxSamples {
			o.samples = o.samples[1:]
			o.dropped++
		}
		o.samples = append(o.samples, m)
	} else {
		if len(o.reports) >= o.maxReports {
			o.reports = o.reports[1:]
			o.dropped++
		}
		o.reports = append(o.reports, m)
	}
	o.mu.Unlock()
	select {
	case o.notify <- struct{}{}:
	default:
	}
}

// pushFront puts back a message that could not be sent.
func (o *outbox) pushFront(m outMsg) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reports = append([]outMsg{m}, o.reports...)
}

func (o *outbox) pop() (outMsg, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.reports) > 0 {
		m := o.reports[0]
		o.reports = o.reports[1:]
		return m, true
	}
	if len(o.samples) > 0 {
		m := o.samples[0]
		o.samples = o.samples[1:]
		return m, true
	}
	return outMsg{}, false
}
