package replaycache

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisConfig holds the Redis connection settings. Other packages that keep
// state in the same Redis (revocation, audit stream) use the same type and
// NewClient, so one configuration block describes the connection.
//
// The deployment is chosen from the fields: MasterName set means Sentinel
// (Addrs are the Sentinels), Cluster true means Redis Cluster (Addrs are
// seed nodes), otherwise Addrs holds the one server.
type RedisConfig struct {
	// Addrs are host:port addresses: the server, the Sentinels or the
	// cluster seed nodes.
	Addrs []string `yaml:"addrs"`
	// MasterName is the Sentinel master set name; empty means no Sentinel.
	MasterName string `yaml:"master_name"`
	// Cluster selects Redis Cluster mode.
	Cluster bool `yaml:"cluster"`
	// Username and Password authenticate to the servers (Redis 6 ACL user;
	// an empty username uses the default user). Never logged.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// SentinelUsername and SentinelPassword authenticate to the Sentinels,
	// when they need other credentials than the servers.
	SentinelUsername string `yaml:"sentinel_username"`
	SentinelPassword string `yaml:"sentinel_password"`
	// DB is the database number; Redis Cluster supports only 0.
	DB  int            `yaml:"db"`
	TLS RedisTLSConfig `yaml:"tls"`
	// DialTimeout bounds connecting to one node. Default 2s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// OpTimeout bounds one operation (for the replay store: one Check,
	// including retries). Default 50ms.
	OpTimeout time.Duration `yaml:"op_timeout"`
	// PoolSize is the number of connections per node; 0 keeps go-redis'
	// default of 10 per CPU.
	PoolSize int `yaml:"pool_size"`
	// KeyPrefix starts every key the replay store writes. Default
	// "pdp:replay:"; it must not contain { or }. Other users of
	// RedisConfig apply their own default.
	KeyPrefix string `yaml:"key_prefix"`
}

// RedisTLSConfig enables TLS to Redis.
type RedisTLSConfig struct {
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle of CAs that sign the server certificates;
	// empty uses the system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and key, for
	// servers that require mutual TLS.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name checked in the server certificate.
	ServerName string `yaml:"server_name"`
}

func (c *RedisConfig) setDefaults() {
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.OpTimeout == 0 {
		c.OpTimeout = DefaultOpTimeout
	}
}

// validate reports every problem, each key prefixed with prefix.
func (c *RedisConfig) validate(prefix string) error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", prefix, key, fmt.Sprintf(format, args...)))
	}

	if len(c.Addrs) == 0 {
		add("addrs", "at least one host:port address is required")
	}
	if len(c.Addrs) > 1 && c.MasterName == "" && !c.Cluster {
		add("addrs", "a single server takes one address, got %d; set cluster: true or master_name for more", len(c.Addrs))
	}
	if c.MasterName != "" && c.Cluster {
		add("cluster", "cannot be combined with master_name (Sentinel)")
	}
	if c.Cluster && c.DB != 0 {
		add("db", "must be 0 for Redis Cluster, got %d", c.DB)
	}
	if c.DB < 0 {
		add("db", "must not be negative, got %d", c.DB)
	}

	if c.DialTimeout < 0 {
		add("dial_timeout", "must not be negative, got %s", c.DialTimeout)
	}
	if c.OpTimeout < 0 {
		add("op_timeout", "must not be negative, got %s", c.OpTimeout)
	}
	if c.PoolSize < 0 {
		add("pool_size", "must not be negative, got %d", c.PoolSize)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		add("tls", "cert_file and key_file must be set together")
	}
	return errors.Join(errs...)
}

// NewClient returns a client for a single server, a Sentinel-managed master
// or a Redis Cluster, as c selects. It does not connect yet, and it does
// not retry failed commands.
func NewClient(c RedisConfig) (redis.UniversalClient, error) {
	c.setDefaults()
	if err := c.validate("redis"); err != nil {
		return nil, err
	}
	tlsConfig, err := c.TLS.build()
	if err != nil {
		return nil, err
	}
	opts := &redis.UniversalOptions{
		Addrs:            c.Addrs,
		MasterName:       c.MasterName,
		Username:         c.Username,
		Password:         c.Password,
		SentinelUsername: c.SentinelUsername,
		SentinelPassword: c.SentinelPassword,
		DB:               c.DB,
		DialTimeout:      c.DialTimeout,
		ReadTimeout:      c.OpTimeout,
		WriteTimeout:     c.OpTimeout,
		PoolSize:         c.PoolSize,
		// Commands are not retried: a replay check whose reply was lost
		// has already recorded its nonce, so its retry would deny a fresh
		// message as a replay.
		MaxRetries: -1,
		// The replay store puts op_timeout on each Check's context, and this
		// flag makes go-redis apply that deadline to the socket as well.
		ContextTimeoutEnabled: true,
		TLSConfig:             tlsConfig,
		IsClusterMode:         c.Cluster,
	}

	switch {
	case c.MasterName != "":
		return redis.NewFailoverClient(opts.Failover()), nil
	case c.Cluster:
		return redis.NewClusterClient(opts.Cluster()), nil
	}
	return redis.NewClient(opts.Simple()), nil
}

func (t RedisTLSConfig) build() (*tls.Config, error) {
	if !t.Enabled {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("redis.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redis.tls.ca_file: no PEM certificates in %s", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("redis.tls.cert_file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
