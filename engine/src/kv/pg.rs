//! The metadata seam on PostgreSQL: each table a relation `kv_<name> (k bytea primary key,
//! v bytea)`, a read transaction a `REPEATABLE READ READ ONLY` snapshot, and a batch a
//! transaction that first takes one cluster-wide advisory lock.
//!
//! That lock is what keeps the embedded store's rule on many nodes: one writer at a time,
//! each batch seeing everything committed before it. Every write of the engine is a batch
//! of the committer (`commit.rs`), and each node's committer takes the lock for its batch,
//! so the engine's read-modify-write steps (the byte totals, an audit sequence number, a tag
//! moved) need no retry loop and meet no serialization failure; readers never wait on it.
//! A batch holds the lock for the few milliseconds of its statements, and batches group
//! many writes, as they do on redb.
//!
//! Keys are stored in the order-preserving encoding of `order.rs`, values as redb encodes
//! them, so everything above reads the same rows the same way on either backend.

use std::collections::{HashMap, HashSet, VecDeque};
use std::marker::PhantomData;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use postgres::types::ToSql;
use postgres::{Client, NoTls, Row, Statement};
use redb::Value;

use super::guard::{AccessGuard, Entry};
use super::order::OrderedKey;
use crate::latency::Latency;
use crate::StoreError;

/// The advisory lock every batch takes (the bytes of "berth" as a number).
const BATCH_LOCK: i64 = 0x62_65_72_74_68;

/// One connection and the statements prepared on it.
pub(crate) struct Conn {
    client: Client,
    prepared: HashMap<String, Statement>,
    /// The database's, shared by every connection of the pool.
    latency: Arc<Latency>,
}

impl Conn {
    fn statement(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        if let Some(s) = self.prepared.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        self.prepared.insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    fn query(&mut self, sql: &str, p: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, StoreError> {
        let latency = self.latency.clone();
        latency.time(|| {
            let s = self.statement(sql).map_err(db_error)?;
            self.client.query(&s, p).map_err(db_error)
        })
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        let latency = self.latency.clone();
        latency.time(|| self.client.batch_execute(sql).map_err(db_error))
    }
}

struct Manager(postgres::Config, Arc<Latency>);

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Conn, postgres::Error> {
        Ok(Conn {
            client: self.0.connect(NoTls)?,
            prepared: HashMap::new(),
            latency: self.1.clone(),
        })
    }

    fn is_valid(&self, c: &mut Conn) -> Result<(), postgres::Error> {
        c.client.batch_execute("")
    }

    fn has_broken(&self, c: &mut Conn) -> bool {
        c.client.is_closed()
    }
}

/// How long a statement may run, and how long to wait for a connection: past either, the
/// request fails (503) rather than hang.
#[derive(Clone, Copy, Debug)]
pub struct PgLimits {
    /// Waiting for a new connection to be made.
    pub connect_timeout: Duration,
    /// One statement's run (PostgreSQL's `statement_timeout` and `lock_timeout`).
    pub statement_timeout: Duration,
    /// Connections kept per node: enough for the workers, the committer and the indexer.
    pub pool_size: u32,
}

impl Default for PgLimits {
    fn default() -> PgLimits {
        PgLimits {
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
            pool_size: 16,
        }
    }
}

/// A PostgreSQL database holding a store's metadata.
pub(crate) struct PgDb {
    pool: r2d2::Pool<Manager>,
    /// Every statement's time, for `/metrics`.
    pub(crate) latency: Arc<Latency>,
    /// Where, for messages: host and port, never the password.
    pub(crate) place: String,
    /// Tables this process created or found, so a batch issues `CREATE TABLE` once.
    created: Mutex<HashSet<String>>,
    /// The last wait for a connection failed: the server is down (or every connection
    /// busy for the whole wait).
    down: AtomicBool,
    /// One caller is waiting for a connection while `down`.
    probing: AtomicBool,
}

impl std::fmt::Debug for PgDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgDb({})", self.place)
    }
}

/// What went wrong, in PostgreSQL's own words when the server said it (the client's
/// `Display` of a server error is only "db error").
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            // The client says "error connecting to server"; the reason is its source.
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                text.push_str(&format!(": {c}"));
                cause = c.source();
            }
            text
        }
    }
}

/// Whether the failure is one of reaching the server (worth retrying) rather than one the
/// server reported about the request.
fn unreachable(e: &postgres::Error) -> bool {
    let code = e.code().map(|c| c.code());
    e.is_closed()
        || code.is_some_and(|c| {
            c.starts_with("08") || c == "57P01" || c == "57P02" || c == "57P03" || c == "53300"
        })
        || (code.is_none() && e.as_db_error().is_none())
}

/// Turns a client error into the store's: a connection that failed or a server shutting
/// down is [`StoreError::Unavailable`] (the caller may retry), anything else a database
/// failure with PostgreSQL's message.
pub(crate) fn db_error(e: postgres::Error) -> StoreError {
    if unreachable(&e) {
        StoreError::Unavailable(format!("metadata database: {}", describe(&e)))
    } else {
        StoreError::new(format!("metadata database: {}", describe(&e)))
    }
}

impl PgDb {
    /// Connects to `url` (`postgres://user[:password]@host[:port]/db`); the first
    /// connection is made now, so a wrong address or password is said at start.
    pub(crate) fn connect(url: &str, limits: PgLimits) -> Result<PgDb, StoreError> {
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| StoreError::new(format!("metadata database URL is not valid: {e}")))?;
        // libpq's convention, so the password need not be in a URL on a command line.
        if config.get_password().is_none() {
            if let Some(p) = std::env::var_os("PGPASSWORD") {
                config.password(p.as_encoded_bytes());
            }
        }
        config.connect_timeout(limits.connect_timeout);
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        config.options(&format!(
            "-c statement_timeout={} -c lock_timeout={}",
            limits.statement_timeout.as_millis(),
            limits.statement_timeout.as_millis()
        ));
        config.application_name("berth");
        let place = place_of(&config);
        // One connection up front: the clear error at start is the client's own.
        let latency = Arc::new(Latency::default());
        let probe = Manager(config.clone(), latency.clone());
        let first = r2d2::ManageConnection::connect(&probe).map_err(|e| {
            let why = describe(&e);
            if unreachable(&e) {
                StoreError::Unavailable(format!(
                    "cannot reach the metadata database, PostgreSQL at {place}: {why}"
                ))
            } else {
                StoreError::new(format!(
                    "the metadata database, PostgreSQL at {place}, refused the connection: {why}"
                ))
            }
        })?;
        drop(first);
        let pool = r2d2::Pool::builder()
            .max_size(limits.pool_size)
            .min_idle(Some(1))
            // Waiting for a connection (all busy, or the server down) ends as a 503 after
            // this, not after a request timeout.
            .connection_timeout(limits.connect_timeout)
            .test_on_check_out(false)
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(probe);
        Ok(PgDb {
            pool,
            latency,
            place,
            created: Mutex::new(HashSet::new()),
            down: AtomicBool::new(false),
            probing: AtomicBool::new(false),
        })
    }

    /// A connection from the pool, waiting up to the connect timeout for one. While the
    /// server is down only one caller at a time waits (and reconnects once it is back);
    /// the others take an idle connection if there is one, else fail at once: callers on
    /// the server's event loops must not each stall for the whole timeout.
    fn connection(&self) -> Result<r2d2::PooledConnection<Manager>, StoreError> {
        let unavailable = |e: &dyn std::fmt::Display| {
            StoreError::Unavailable(format!(
                "metadata database: no connection to PostgreSQL at {}: {e}",
                self.place
            ))
        };
        if self.down.load(Ordering::Acquire) {
            if let Some(c) = self.pool.try_get() {
                // A connection was free: whatever it meets, the pool is serving again.
                self.down.store(false, Ordering::Release);
                return Ok(c);
            }
            if self.probing.swap(true, Ordering::AcqRel) {
                return Err(unavailable(
                    &"the last wait for a connection ran out, and another is waiting now",
                ));
            }
            /// Lets the next caller wait, however this one's wait ends.
            struct Probed<'a>(&'a AtomicBool);
            impl Drop for Probed<'_> {
                fn drop(&mut self) {
                    self.0.store(false, Ordering::Release);
                }
            }
            let _probed = Probed(&self.probing);
            let c = self.pool.get().map_err(|e| unavailable(&e))?;
            self.down.store(false, Ordering::Release);
            return Ok(c);
        }
        self.pool.get().map_err(|e| {
            self.down.store(true, Ordering::Release);
            unavailable(&e)
        })
    }

    fn session(&self, begin: &str) -> Result<Arc<Session>, StoreError> {
        let mut conn = self.connection()?;
        conn.batch(begin)?;
        Ok(Arc::new(Session {
            conn: Mutex::new(Some(conn)),
        }))
    }

    pub(crate) fn begin_read(&self) -> Result<Arc<Session>, StoreError> {
        self.session("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    }

    pub(crate) fn begin_write(&self) -> Result<Arc<Session>, StoreError> {
        self.session(&format!(
            "BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock({BATCH_LOCK})"
        ))
    }

    /// One row read outside any transaction (one statement): for a value checked on every
    /// request, where a snapshot's `BEGIN` would double the cost.
    pub(crate) fn get_now<K: OrderedKey>(
        &self,
        table: &str,
        key: &K::SelfType<'_>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let mut conn = self.connection()?;
        let sql = format!("SELECT v FROM {} WHERE k = $1", relation(table));
        let rows = conn.query(&sql, &[&K::ordered(key)])?;
        Ok(rows.first().map(|r| r.get::<_, Vec<u8>>(0)))
    }

    /// Takes the cluster-wide lock `key` if no session holds it: held while what is returned
    /// lives, and released by PostgreSQL itself if this node dies (the lock belongs to the
    /// connection). `None` if another node holds it.
    pub(crate) fn try_lock(&self, key: i64) -> Result<Option<ClusterLock>, StoreError> {
        let mut conn = self.connection()?;
        let rows = conn.query("SELECT pg_try_advisory_lock($1)", &[&key])?;
        let got = rows.first().is_some_and(|r| r.get::<_, bool>(0));
        Ok(got.then_some(ClusterLock { conn, key }))
    }

    /// Creates table `name` in the batch `s` the first time this process opens it there.
    pub(crate) fn ensure_table(&self, s: &Session, name: &str) -> Result<(), StoreError> {
        let mut created = self.created.lock().unwrap_or_else(|p| p.into_inner());
        if created.contains(name) {
            return Ok(());
        }
        s.conn()?.batch(&format!(
            "CREATE TABLE IF NOT EXISTS {} (k bytea PRIMARY KEY, v bytea NOT NULL)",
            relation(name)
        ))?;
        created.insert(name.to_owned());
        Ok(())
    }

    /// Forgets the tables created, after a batch that created some failed.
    pub(crate) fn forget_created(&self) {
        self.created
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// A cluster-wide lock (a session-level advisory lock on its own pooled connection).
pub(crate) struct ClusterLock {
    conn: r2d2::PooledConnection<Manager>,
    key: i64,
}

impl Drop for ClusterLock {
    fn drop(&mut self) {
        // If this fails the connection is broken, and PostgreSQL ends the lock with it.
        let _ = self
            .conn
            .batch(&format!("SELECT pg_advisory_unlock({})", self.key));
    }
}

fn place_of(c: &postgres::Config) -> String {
    let host = match c.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    let db = c.get_dbname().unwrap_or("");
    format!("{host}:{port}/{db}")
}

/// The relation holding table `name` (engine table names are `[a-z_]+`).
fn relation(name: &str) -> String {
    format!("kv_{name}")
}

/// One transaction on one pooled connection; rolled back when dropped uncommitted, and the
/// connection given back.
pub(crate) struct Session {
    conn: Mutex<Option<r2d2::PooledConnection<Manager>>>,
}

impl Session {
    fn conn(&self) -> Result<SessionConn<'_>, StoreError> {
        let g = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            return Err(StoreError::new(
                "metadata database: transaction already ended",
            ));
        }
        Ok(SessionConn(g))
    }

    /// Commits; `lazy` lets the commit return before its WAL is flushed (the next durable
    /// commit carries it), as redb's `Durability::None` does.
    pub(crate) fn commit(&self, lazy: bool) -> Result<(), StoreError> {
        let mut g = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let Some(mut c) = g.take() else {
            return Err(StoreError::new(
                "metadata database: transaction already ended",
            ));
        };
        if lazy {
            c.batch("SET LOCAL synchronous_commit = off")?;
        }
        c.batch("COMMIT")
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let g = self.conn.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(mut c) = g.take() {
            // A connection whose rollback fails is broken; r2d2 drops it (`has_broken`).
            let _ = c.batch("ROLLBACK");
        }
    }
}

struct SessionConn<'a>(MutexGuard<'a, Option<r2d2::PooledConnection<Manager>>>);

impl std::ops::Deref for SessionConn<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.0.as_ref().expect("checked when made")
    }
}

impl std::ops::DerefMut for SessionConn<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.0.as_mut().expect("checked when made")
    }
}

/// A table in a transaction.
pub(crate) struct PgTable<K, V> {
    s: Arc<Session>,
    rel: String,
    _t: PhantomData<fn() -> (K, V)>,
}

fn key_guard<'a, K: OrderedKey>(ordered: &[u8]) -> Result<AccessGuard<'a, K>, StoreError> {
    let b = K::redb_bytes(ordered).ok_or(StoreError::Corrupt("table key"))?;
    Ok(AccessGuard::owned(b))
}

fn bound(b: Bound<&[u8]>, op_in: &str, op_ex: &str, n: usize) -> (String, Option<Vec<u8>>) {
    match b {
        Bound::Unbounded => (String::new(), None),
        Bound::Included(k) => (format!(" AND k {op_in} ${n}"), Some(k.to_vec())),
        Bound::Excluded(k) => (format!(" AND k {op_ex} ${n}"), Some(k.to_vec())),
    }
}

impl<K: OrderedKey, V: Value + 'static> PgTable<K, V> {
    pub(crate) fn new(s: Arc<Session>, name: &str) -> PgTable<K, V> {
        PgTable {
            s,
            rel: relation(name),
            _t: PhantomData,
        }
    }

    pub(crate) fn get(&self, key: &K::SelfType<'_>) -> Result<Option<Vec<u8>>, StoreError> {
        let k = K::ordered(key);
        let sql = format!("SELECT v FROM {} WHERE k = $1", self.rel);
        let rows = self.s.conn()?.query(&sql, &[&k])?;
        Ok(rows.first().map(|r| r.get::<_, Vec<u8>>(0)))
    }

    pub(crate) fn len(&self) -> Result<u64, StoreError> {
        let sql = format!("SELECT count(*) FROM {}", self.rel);
        let rows = self.s.conn()?.query(&sql, &[])?;
        Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0)) as u64)
    }

    pub(crate) fn range(&self, lo: Bound<Vec<u8>>, hi: Bound<Vec<u8>>) -> PgRange<K, V> {
        PgRange {
            s: self.s.clone(),
            rel: self.rel.clone(),
            lo,
            hi,
            front: VecDeque::new(),
            back: VecDeque::new(),
            fetched: 0,
            _t: PhantomData,
        }
    }

    pub(crate) fn insert(
        &self,
        key: &K::SelfType<'_>,
        value: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let k = K::ordered(key);
        let sql = format!(
            "WITH old AS (SELECT v FROM {r} WHERE k = $1), \
             put AS (INSERT INTO {r} (k, v) VALUES ($1, $2) \
                     ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v) \
             SELECT v FROM old",
            r = self.rel
        );
        let rows = self.s.conn()?.query(&sql, &[&k, &value])?;
        Ok(rows.first().map(|r| r.get::<_, Vec<u8>>(0)))
    }

    pub(crate) fn remove(&self, key: &K::SelfType<'_>) -> Result<Option<Vec<u8>>, StoreError> {
        let k = K::ordered(key);
        let sql = format!("DELETE FROM {} WHERE k = $1 RETURNING v", self.rel);
        let rows = self.s.conn()?.query(&sql, &[&k])?;
        Ok(rows.first().map(|r| r.get::<_, Vec<u8>>(0)))
    }

    pub(crate) fn clear(&self) -> Result<(), StoreError> {
        self.s.conn()?.batch(&format!("DELETE FROM {}", self.rel))
    }
}

/// A row as fetched: ordered key bytes, value bytes.
type RawRow = (Vec<u8>, Vec<u8>);

/// A range walked in pages from either end. `lo` and `hi` bound what is not yet yielded:
/// each end moves its bound past what it yields, so the ends never hand out a row twice,
/// and a page is fetched with the bounds as they stand.
pub(crate) struct PgRange<K, V> {
    s: Arc<Session>,
    rel: String,
    lo: Bound<Vec<u8>>,
    hi: Bound<Vec<u8>>,
    front: VecDeque<RawRow>,
    back: VecDeque<RawRow>,
    /// Pages fetched so far: the first is small (most walks stop early), later ones larger.
    fetched: u32,
    _t: PhantomData<fn() -> (K, V)>,
}

fn within(k: &[u8], lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>) -> bool {
    let above = match lo {
        Bound::Unbounded => true,
        Bound::Included(l) => k >= &l[..],
        Bound::Excluded(l) => k > &l[..],
    };
    let below = match hi {
        Bound::Unbounded => true,
        Bound::Included(h) => k <= &h[..],
        Bound::Excluded(h) => k < &h[..],
    };
    above && below
}

impl<K: OrderedKey, V: Value + 'static> PgRange<K, V> {
    fn fetch(&mut self, forward: bool) -> Result<VecDeque<RawRow>, StoreError> {
        let limit = if self.fetched == 0 { 16 } else { 512 };
        self.fetched += 1;
        let (lo_sql, lo_p) = bound(self.lo.as_ref().map(|v| &v[..]), ">=", ">", 1);
        let n = if lo_p.is_some() { 2 } else { 1 };
        let (hi_sql, hi_p) = bound(self.hi.as_ref().map(|v| &v[..]), "<=", "<", n);
        let sql = format!(
            "SELECT k, v FROM {} WHERE true{lo_sql}{hi_sql} ORDER BY k {} LIMIT {limit}",
            self.rel,
            if forward { "ASC" } else { "DESC" }
        );
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        if let Some(p) = &lo_p {
            params.push(p);
        }
        if let Some(p) = &hi_p {
            params.push(p);
        }
        let rows = self.s.conn()?.query(&sql, &params)?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get::<_, Vec<u8>>(0), r.get::<_, Vec<u8>>(1)))
            .collect())
    }

    fn step(&mut self, forward: bool) -> Option<Result<RawRow, StoreError>> {
        let buf_empty = if forward {
            self.front.is_empty()
        } else {
            self.back.is_empty()
        };
        if buf_empty {
            match self.fetch(forward) {
                Ok(rows) if forward => self.front = rows,
                Ok(rows) => self.back = rows,
                Err(e) => return Some(Err(e)),
            }
        }
        let (k, v) = if forward {
            self.front.pop_front()?
        } else {
            self.back.pop_front()?
        };
        if !within(&k, &self.lo, &self.hi) {
            // The other end already yielded it: the range is used up.
            self.front.clear();
            self.back.clear();
            self.lo = Bound::Excluded(k.clone());
            self.hi = Bound::Excluded(k);
            return None;
        }
        if forward {
            self.lo = Bound::Excluded(k.clone());
        } else {
            self.hi = Bound::Excluded(k.clone());
        }
        Some(Ok((k, v)))
    }

    pub(crate) fn next_entry<'a>(
        &mut self,
        forward: bool,
    ) -> Option<Result<Entry<'a, K, V>, StoreError>> {
        Some(
            self.step(forward)?
                .and_then(|(k, v)| Ok((key_guard::<K>(&k)?, AccessGuard::owned(v)))),
        )
    }
}

/// A bound on keys as their ordered bytes.
pub(crate) fn ordered_bound<K: OrderedKey>(b: Bound<&K::SelfType<'_>>) -> Bound<Vec<u8>> {
    match b {
        Bound::Unbounded => Bound::Unbounded,
        Bound::Included(k) => Bound::Included(K::ordered(k)),
        Bound::Excluded(k) => Bound::Excluded(K::ordered(k)),
    }
}
