package pdp

import (
	"sync"
	"time"
)

// Repeated-error logging: during an outage every decision fails the same
// way, so each reason logs at most logBurst lines at its own level per
// logWindow. The rest go to Debug, and the next line at full level carries
// the count that was demoted.
const (
	logBurst  = 10
	logWindow = time.Second
)

// logLimiter counts log lines per key in fixed windows.
type logLimiter struct {
	mu      sync.Mutex
	windows map[string]*logWindowState
}

type logWindowState struct {
	start      time.Time
	count      int
	suppressed int
}

// allow reports whether a line for key may be logged at its full level
// now, and how many lines for key were demoted since the last one that was.
func (l *logLimiter) allow(key string, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.windows == nil {
		l.windows = make(map[string]*logWindowState)
	}
	w, ok := l.windows[key]
	if !ok {
		w = &logWindowState{start: now}
		l.windows[key] = w
	}
	if now.Sub(w.start) >= logWindow {
		w.start, w.count = now, 0
	}
	if w.count >= logBurst {
		w.suppressed++
		return false, 0
	}
	w.count++
	suppressed := w.suppressed
	w.suppressed = 0
	return true, suppressed
}
