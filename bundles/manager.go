package bundles

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/authgate/pdp/pdp"
)

// Manager owns the active policy revision. It loads the configured bundle,
// compiles each new revision off the request path and publishes it with
// one atomic store. A bundle that fails to load or compile is rejected, and
// the last good revision keeps serving. It is safe for concurrent use.
type Manager struct {
	cfg        Config
	log        *slog.Logger
	opts       Options
	kind       string
	entrypoint ast.Ref
	reader     readSettings
	// missingPoll is the wait between two checks for a missing bundle
	// directory, missingPollInterval except in tests.
	missingPoll time.Duration

	active atomic.Pointer[revision]
	cache  CacheStats
	// activateMu serializes load, compile and publish, so revisions are
	// published in the order their loads started.
	activateMu sync.Mutex

	statusMu    sync.Mutex
	lastAttempt time.Time
	lastErr     error

	lifecycleMu sync.Mutex
	started     bool
	stopped     bool
	cancel      context.CancelFunc
	wg          sync.WaitGroup
	remote      *remoteSource
}

var _ pdp.PolicySource = (*Manager)(nil)

// NewManager validates cfg, reads the signing keys and returns a Manager.
// Start loads the bundle.
func NewManager(cfg Config, opts Options) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	entrypoint, err := parseEntrypoint(cfg.Entrypoint)
	if err != nil {
		return nil, fmt.Errorf("bundle.entrypoint: %w", err)
	}
	vc, err := newVerificationConfig(cfg.Signing)
	if err != nil {
		return nil, err
	}

	m := &Manager{
		cfg:         cfg,
		log:         opts.Logger,
		opts:        opts,
		entrypoint:  entrypoint,
		reader:      readSettings{verification: vc, maxSize: cfg.MaxSize, baseDir: cfg.BaseDir},
		missingPoll: missingPollInterval,
	}
	switch {
	case cfg.URL != "":
		m.kind = sourceRemote
		m.remote, err = newRemoteSource(m, vc)
		if err != nil {
			return nil, err
		}
	case cfg.Path != "" && isTarball(cfg.Path):
		m.kind = sourceTarball
	case cfg.Path != "":
		m.kind = sourceDirectory
	case opts.Embedded != nil:
		m.kind = sourceEmbedded
	default:
		return nil, errors.New("bundle: no path or url is configured and no embedded bundle was given")
	}
	return m, nil
}

// Start loads and activates the bundle. It returns the load error when the
// first bundle cannot be activated, and that error names the file and line
// of a Rego error. After a successful first load it starts the file watcher or
// the bundle server poller, which run until Stop. ctx bounds only the first
// load, so a startup timeout does not end the watcher.
func (m *Manager) Start(ctx context.Context) error {
	m.lifecycleMu.Lock()
	defer m.lifecycleMu.Unlock()
	if m.started {
		return errors.New("bundles: manager already started")
	}
	m.started = true
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel

	if m.kind == sourceRemote {
		if err := m.remote.start(ctx); err != nil {
			m.remote.stop()
			cancel()
			return fmt.Errorf("load bundle from %s: %w", m.remote.location(), err)
		}
		return nil
	}

	if err := m.loadLocal(ctx); err != nil {
		cancel()
		return fmt.Errorf("load bundle %s: %w", m.location(), err)
	}
	if m.kind != sourceEmbedded && *m.cfg.Watch {
		if err := m.startWatch(runCtx); err != nil {
			cancel()
			return err
		}
	}
	return nil
}

// Stop ends the watcher or poller. The active revision keeps serving.
// Stop may be called more than once.
func (m *Manager) Stop() {
	m.lifecycleMu.Lock()
	defer m.lifecycleMu.Unlock()
	if m.stopped || !m.started {
		m.stopped = true
		return
	}
	m.stopped = true
	m.cancel()
	if m.remote != nil {
		m.remote.stop()
	}
	m.wg.Wait()
}

// Reload reads the bundle again and activates it. For a bundle server it
// polls now, and a Not Modified answer leaves the active revision in place.
// It returns the reason a new bundle was rejected.
func (m *Manager) Reload(ctx context.Context) error {
	if m.kind == sourceRemote {
		return m.remote.reload(ctx)
	}
	return m.loadLocal(ctx)
}

// Active returns the active revision, nil before the first activation.
func (m *Manager) Active() pdp.Policy {
	if r := m.active.Load(); r != nil {
		return r
	}
	return nil
}

// Ready returns nil once a revision is active.
func (m *Manager) Ready() error {
	if m.active.Load() != nil {
		return nil
	}
	_, err := m.LastActivation()
	if err != nil {
		return fmt.Errorf("no bundle revision is active: %w", err)
	}
	return errors.New("no bundle revision is active yet")
}

// Revision returns the active revision, "" before the first activation.
func (m *Manager) Revision() string {
	if r := m.active.Load(); r != nil {
		return r.id
	}
	return ""
}

// LastActivation returns the time of the last activation attempt and its
// error, nil when that attempt succeeded. The time is zero before the
// first attempt ends. A bundle server answer of Not Modified is no attempt.
func (m *Manager) LastActivation() (time.Time, error) {
	m.statusMu.Lock()
	defer m.statusMu.Unlock()
	return m.lastAttempt, m.lastErr
}

// location names the local source in errors and logs.
func (m *Manager) location() string {
	if m.kind == sourceEmbedded {
		return "embedded"
	}
	return m.cfg.Path
}

// loadLocal reads the directory, file or embedded bundle, activates it
// and reports the attempt to Options.OnActivate.
func (m *Manager) loadLocal(ctx context.Context) error {
	id, err := m.readAndActivate(ctx)
	m.notifyActivation(id, err)
	return err
}

// readAndActivate runs loadLocal's read and activation under activateMu
// and returns the new revision id.
func (m *Manager) readAndActivate(ctx context.Context) (string, error) {
	m.activateMu.Lock()
	defer m.activateMu.Unlock()

	var b *bundle.Bundle
	var err error
	switch m.kind {
	case sourceDirectory:
		b, err = m.reader.readDirectory(m.cfg.Path)
	case sourceTarball:
		b, err = m.reader.readTarball(m.cfg.Path)
	default:
		b, err = m.reader.readFS(m.opts.Embedded)
	}
	var id string
	if err == nil {
		id, err = m.activateLocked(ctx, b)
	}
	if err != nil && m.kind == sourceDirectory {
		err = locateIn(m.cfg.Path, err)
	}
	m.record(err)
	return id, err
}

// activate compiles and publishes a bundle read elsewhere, such as one
// downloaded from a bundle server, and reports the attempt to
// Options.OnActivate.
func (m *Manager) activate(ctx context.Context, b *bundle.Bundle) error {
	m.activateMu.Lock()
	id, err := m.activateLocked(ctx, b)
	m.record(err)
	m.activateMu.Unlock()

	m.notifyActivation(id, err)
	return err
}

// activateLocked compiles b, publishes it and returns its revision id.
func (m *Manager) activateLocked(ctx context.Context, b *bundle.Bundle) (string, error) {
	rev, err := compile(ctx, b, compileOptions{
		entrypoint:        m.entrypoint,
		queryCacheSize:    m.cfg.QueryCacheSize,
		decisionCacheSize: m.cfg.DecisionCacheSize,
		cacheStats:        &m.cache,
		source:            m.kind,
	})
	if err != nil {
		return "", err
	}
	rev.activated = time.Now()
	previous := m.active.Swap(rev)

	attrs := []any{"bundle_revision", rev.id, "source", m.kind, "entrypoint", rev.entrypoint}
	if previous != nil {
		attrs = append(attrs, "previous_revision", previous.id)
	}
	if rev.entrypoint != m.entrypoint.String() {
		attrs = append(attrs, "configured_entrypoint", m.entrypoint.String())
	}
	m.log.Info("bundle activated", attrs...)
	return rev.id, nil
}

// DecisionCacheStats returns the decision cache's lookups so far, over
// every revision.
func (m *Manager) DecisionCacheStats() (hits, misses uint64) {
	return m.cache.Hits.Load(), m.cache.Misses.Load()
}

// notifyActivation passes one activation attempt to Options.OnActivate.
// On failure it names the revision that keeps serving. Callers must hold
// no Manager lock, so the callback may read the Manager.
func (m *Manager) notifyActivation(revision string, err error) {
	if m.opts.OnActivate == nil {
		return
	}
	if err != nil {
		revision = m.Revision()
	}
	m.opts.OnActivate(revision, err)
}

// record stores the outcome of an activation attempt and logs a rejection.
// The caller holds activateMu and reports the attempt to
// Options.OnActivate after releasing it.
func (m *Manager) record(err error) {
	m.storeStatus(err)
	if err != nil {
		m.logRejected(err)
	}
}

// setStatus stores the outcome of an attempt that ended before activation,
// such as a failed download, and reports it to Options.OnActivate. The
// caller must hold no Manager lock.
func (m *Manager) setStatus(err error) {
	m.storeStatus(err)
	m.notifyActivation("", err)
}

func (m *Manager) storeStatus(err error) {
	m.statusMu.Lock()
	m.lastAttempt, m.lastErr = time.Now(), err
	m.statusMu.Unlock()
}

func (m *Manager) logRejected(err error) {
	attrs := []any{"source", m.kind, "error", err}
	if file, line := errorLocation(err); file != "" {
		attrs = append(attrs, "file", file, "line", line)
	}
	if cur := m.active.Load(); cur != nil {
		attrs = append(attrs, "bundle_revision", cur.id)
		m.log.Warn("bundle rejected, the last good revision keeps serving", attrs...)
		return
	}
	m.log.Error("bundle rejected, no revision is active", attrs...)
}
