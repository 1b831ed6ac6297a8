//! The messages between the crew and a job's shim and init, one per
//! `SOCK_SEQPACKET` datagram, and the shim's exit record. The encoding is a
//! tag byte followed by fixed-width little-endian integers and
//! length-prefixed byte strings; a decoder never panics on what it is
//! handed.
//!
//! A shim outlives the crew that started it, so the two ends are not always
//! the same build. A crew that starts a shim speaks [`PROTOCOL`] with it
//! over the socket pair it made. A crew that comes back (a restart, an
//! upgrade) connects to the shim's socket (`jobs/<id>.sock`), says which
//! versions it speaks ([`ToShim::Hello`]), and the shim answers with its
//! own version first ([`FromShim::Welcome`]): a crew that cannot speak it
//! reads that much ([`welcome_version`]), says so and leaves the job
//! running for a crew that can.

/// Crew to init, the one message init gets: the command to run.
///
/// Fds, in order: the exec-result pipe's write end; then the pty slave for a
/// tty job, or the stdin pipe's read end and the output pipe's write end;
/// then the job's cgroup2 directory and its `cgroup.procs`; then `v1_procs`
/// v1 `cgroup.procs` files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    pub argv: Vec<Vec<u8>>,
    /// `KEY=value` entries.
    pub env: Vec<Vec<u8>>,
    pub cwd: Vec<u8>,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub tty: bool,
    pub host_network: bool,
    pub v1_procs: u32,
    /// Whether the cgroup2 directory fd is usable with `CLONE_INTO_CGROUP`.
    pub clone_into_cgroup: bool,
}

impl Launch {
    /// The number of fds that travel with this message.
    pub fn fd_count(&self) -> usize {
        let stdio = if self.tty { 1 } else { 3 };
        1 + stdio + 2 + self.v1_procs as usize
    }
}

/// The version of this protocol (the messages below and their meaning).
/// Raise it with any change a shim of the previous version would not
/// understand, and keep decoding the previous one where it can be done.
pub const PROTOCOL: u32 = 1;

/// Crew to shim, first: the job to serve.
///
/// Fds, in order: the jobs directory (where the shim makes its socket and
/// its exit record), the output file, the eventfd; then the pty master for
/// a tty job, or the output pipe's read end and the stdin pipe's write end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Serve {
    /// The job's id: names `<id>.sock` and `<id>.exit` in the jobs directory.
    pub job_id: Vec<u8>,
    /// What `ps` shows after the program name (the job's handle and id).
    pub title: Vec<u8>,
    /// The crew's record of the job, opaque to the shim, handed back in
    /// [`FromShim::Welcome`] and kept in the exit record: what a crew that
    /// lost its store needs to know the job again. At most
    /// [`MAX_RECORD`] bytes.
    pub record: Vec<u8>,
    pub tty: bool,
    /// Bytes of output kept on disk; older bytes are dropped.
    pub output_limit: u64,
    /// Output is dropped in units of this many bytes (a multiple of 4 KiB).
    pub drop_unit: u64,
}

impl Serve {
    pub fn fd_count(&self) -> usize {
        if self.tty { 4 } else { 6 }
    }
}

/// For tests: the protocol version a shim claims instead of its own, to play
/// a shim of another release.
pub const PROTOCOL_OVERRIDE_ENV: &str = "TASKER_SHIM_PROTOCOL";

/// The largest [`Serve::record`].
pub const MAX_RECORD: usize = 64 << 10;

/// Crew to shim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToShim {
    Serve(Serve),
    Stdin(Vec<u8>),
    CloseStdin,
    Resize {
        rows: u16,
        cols: u16,
    },
    /// SIGTERM to every process of the job.
    Terminate,
    /// SIGKILL to every process of the job.
    Kill,
    /// The first message on a connection to a shim's socket: the versions
    /// of this protocol the crew speaks.
    Hello {
        min: u32,
        max: u32,
    },
    /// The job's end ([`FromShim::Exited`]) is in the crew's store: the
    /// shim may go without writing its exit record.
    Recorded,
}

/// Shim to crew.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FromShim {
    /// The job could not be prepared; the command never ran.
    StartFailed { reason: String },
    /// The job's stdin can take no more bytes (the job closed it).
    StdinClosed { reason: String },
    /// A diagnostic for the crew's log.
    Log { message: String },
    /// Every process of the job is gone and all output is on disk. `status`
    /// is the command's wait status, absent if it never ran.
    Exited {
        status: Option<i32>,
        output_end: u64,
        output_error: Option<String>,
    },
    /// The answer to [`ToShim::Hello`], its own version first (see
    /// [`welcome_version`]); with it comes the job's eventfd. From then on
    /// this connection is the crew's: the shim sends its messages here and
    /// drops the previous one.
    Welcome {
        version: u32,
        /// [`Serve::record`].
        record: Vec<u8>,
        stdin_open: bool,
        output_end: u64,
    },
}

/// How a job ended, as its shim saw it: written (`<id>.exit`, atomically
/// and synced) once every process of the job is gone and its output is on
/// disk, unless a crew took the end ([`FromShim::Exited`]) and said it has
/// it on record ([`ToShim::Recorded`]). A crew that was away when the job
/// ended, or went before it had the end on record, reads it there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExitRecord {
    /// The command's wait status; `None` if it never ran.
    pub status: Option<i32>,
    pub output_end: u64,
    pub output_error: Option<String>,
    /// When init exited, in nanoseconds since the Unix epoch.
    pub ended_at_ns: u64,
    /// The crew's record of the job ([`Serve::record`]).
    pub record: Vec<u8>,
}

/// The first bytes of an exit record file: its format and version.
pub const EXIT_MAGIC: &[u8; 8] = b"TASKEXT1";

/// The largest message the crew sends; `Launch` is bounded by the engine's
/// argv + env limit well below this.
pub const MAX_MESSAGE: usize = 4 << 20;

/// The largest message a shim sends (its texts are cut to fit).
pub const MAX_FROM_SHIM: usize = 4096;

/// Stdin travels in chunks of at most this many bytes.
pub const STDIN_CHUNK: usize = 64 << 10;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed shim message: {0}")]
pub struct DecodeError(&'static str);

struct Writer(Vec<u8>);

impl Writer {
    fn new(tag: u8) -> Self {
        Self(vec![tag])
    }
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u32(v.len() as u32);
        self.0.extend_from_slice(v);
        self
    }
    fn list(&mut self, v: &[Vec<u8>]) -> &mut Self {
        self.u32(v.len() as u32);
        for item in v {
            self.bytes(item);
        }
        self
    }
    fn opt_bytes(&mut self, v: Option<&[u8]>) -> &mut Self {
        match v {
            Some(b) => self.u8(1).bytes(b),
            None => self.u8(0),
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError("truncated"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError("bad bool")),
        }
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    fn string(&mut self) -> Result<String, DecodeError> {
        Ok(String::from_utf8_lossy(&self.bytes()?).into_owned())
    }
    fn list(&mut self) -> Result<Vec<Vec<u8>>, DecodeError> {
        let n = self.u32()? as usize;
        // Each item needs at least its 4-byte length: refuse counts the
        // message cannot hold before allocating for them.
        if n > self.0.len() / 4 {
            return Err(DecodeError("list longer than the message"));
        }
        (0..n).map(|_| self.bytes()).collect()
    }
    fn opt_string(&mut self) -> Result<Option<String>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.string()?)),
            _ => Err(DecodeError("bad option tag")),
        }
    }
    fn done(&self) -> Result<(), DecodeError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DecodeError("trailing bytes"))
        }
    }
}

impl ToShim {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Serve(v) => {
                let mut w = Writer::new(1);
                w.u8(u8::from(v.tty))
                    .u64(v.output_limit)
                    .u64(v.drop_unit)
                    .bytes(&v.job_id)
                    .bytes(&v.title)
                    .bytes(&v.record);
                w.0
            }
            Self::Stdin(b) => {
                let mut w = Writer::new(2);
                w.0.extend_from_slice(b);
                w.0
            }
            Self::CloseStdin => vec![3],
            Self::Resize { rows, cols } => Writer::new(4).u16(*rows).u16(*cols).0.clone(),
            Self::Terminate => vec![5],
            Self::Kill => vec![6],
            Self::Hello { min, max } => Writer::new(7).u32(*min).u32(*max).0.clone(),
            Self::Recorded => vec![8],
        }
    }

    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let (&tag, rest) = buf.split_first().ok_or(DecodeError("empty"))?;
        let mut r = Reader(rest);
        let msg = match tag {
            1 => {
                let tty = r.bool()?;
                let (output_limit, drop_unit) = (r.u64()?, r.u64()?);
                Self::Serve(Serve {
                    job_id: r.bytes()?,
                    title: r.bytes()?,
                    record: r.bytes()?,
                    tty,
                    output_limit,
                    drop_unit,
                })
            }
            2 => return Ok(Self::Stdin(rest.to_vec())),
            3 => Self::CloseStdin,
            4 => Self::Resize {
                rows: r.u16()?,
                cols: r.u16()?,
            },
            5 => Self::Terminate,
            6 => Self::Kill,
            7 => Self::Hello {
                min: r.u32()?,
                max: r.u32()?,
            },
            8 => Self::Recorded,
            _ => return Err(DecodeError("unknown tag")),
        };
        r.done()?;
        Ok(msg)
    }
}

impl Launch {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(10);
        let flags =
            u8::from(self.tty) | u8::from(self.host_network) << 1 | u8::from(self.clone_into_cgroup) << 2;
        w.u8(flags).u32(self.uid).u32(self.gid);
        w.u32(self.groups.len() as u32);
        for g in &self.groups {
            w.u32(*g);
        }
        w.u32(self.v1_procs);
        w.bytes(&self.cwd).list(&self.argv).list(&self.env);
        w.0
    }

    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let (&tag, rest) = buf.split_first().ok_or(DecodeError("empty"))?;
        if tag != 10 {
            return Err(DecodeError("not a launch message"));
        }
        let mut r = Reader(rest);
        let flags = r.u8()?;
        let (uid, gid) = (r.u32()?, r.u32()?);
        let n = r.u32()? as usize;
        if n > r.0.len() / 4 {
            return Err(DecodeError("too many groups"));
        }
        let groups = (0..n).map(|_| r.u32()).collect::<Result<_, _>>()?;
        let v1_procs = r.u32()?;
        let cwd = r.bytes()?;
        let argv = r.list()?;
        let env = r.list()?;
        r.done()?;
        if argv.is_empty() {
            return Err(DecodeError("empty argv"));
        }
        Ok(Self {
            argv,
            env,
            cwd,
            uid,
            gid,
            groups,
            tty: flags & 1 != 0,
            host_network: flags & 2 != 0,
            v1_procs,
            clone_into_cgroup: flags & 4 != 0,
        })
    }
}

const WELCOME: u8 = 106;

/// The protocol version a shim's [`FromShim::Welcome`] speaks, read from its
/// first bytes, which every version keeps: a tag, then the version.
#[must_use]
pub fn welcome_version(buf: &[u8]) -> Option<u32> {
    match buf {
        [WELCOME, a, b, c, d, ..] => Some(u32::from_le_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

impl ExitRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(EXIT_MAGIC.to_vec());
        match self.status {
            Some(s) => w.u8(1).u32(s as u32),
            None => w.u8(0),
        };
        w.u64(self.output_end)
            .opt_bytes(self.output_error.as_deref().map(str::as_bytes))
            .u64(self.ended_at_ns)
            .bytes(&self.record);
        w.0
    }

    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let rest = buf
            .strip_prefix(EXIT_MAGIC.as_slice())
            .ok_or(DecodeError("not an exit record"))?;
        let mut r = Reader(rest);
        let status = match r.u8()? {
            0 => None,
            1 => Some(r.u32()? as i32),
            _ => return Err(DecodeError("bad option tag")),
        };
        let rec = Self {
            status,
            output_end: r.u64()?,
            output_error: r.opt_string()?,
            ended_at_ns: r.u64()?,
            record: r.bytes()?,
        };
        r.done()?;
        Ok(rec)
    }
}

/// Cuts a text so that its message fits [`MAX_FROM_SHIM`].
fn cut(text: &str) -> &[u8] {
    let limit = MAX_FROM_SHIM - 64;
    if text.len() <= limit {
        return text.as_bytes();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text.as_bytes()[..end]
}

impl FromShim {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::StartFailed { reason } => Writer::new(102).bytes(cut(reason)).0.clone(),
            Self::StdinClosed { reason } => Writer::new(103).bytes(cut(reason)).0.clone(),
            Self::Log { message } => Writer::new(104).bytes(cut(message)).0.clone(),
            Self::Exited {
                status,
                output_end,
                output_error,
            } => {
                let mut w = Writer::new(105);
                match status {
                    Some(s) => w.u8(1).u32(*s as u32),
                    None => w.u8(0),
                };
                w.u64(*output_end).opt_bytes(output_error.as_deref().map(cut));
                w.0
            }
            Self::Welcome {
                version,
                record,
                stdin_open,
                output_end,
            } => {
                let mut w = Writer::new(WELCOME);
                w.u32(*version)
                    .bytes(record)
                    .u8(u8::from(*stdin_open))
                    .u64(*output_end);
                w.0
            }
        }
    }

    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let (&tag, rest) = buf.split_first().ok_or(DecodeError("empty"))?;
        let mut r = Reader(rest);
        let msg = match tag {
            102 => Self::StartFailed { reason: r.string()? },
            103 => Self::StdinClosed { reason: r.string()? },
            104 => Self::Log { message: r.string()? },
            105 => {
                let status = match r.u8()? {
                    0 => None,
                    1 => Some(r.u32()? as i32),
                    _ => return Err(DecodeError("bad option tag")),
                };
                Self::Exited {
                    status,
                    output_end: r.u64()?,
                    output_error: r.opt_string()?,
                }
            }
            // The layout this build knows; whether its version is one the
            // reader speaks is the reader's to check (`welcome_version`).
            WELCOME => {
                let version = r.u32()?;
                Self::Welcome {
                    version,
                    record: r.bytes()?,
                    stdin_open: r.bool()?,
                    output_end: r.u64()?,
                }
            }
            _ => return Err(DecodeError("unknown tag")),
        };
        r.done()?;
        Ok(msg)
    }
}

// How a shim is started: fd 0 is its `SOCK_SEQPACKET` socket to the crew,
// fd 1 its init's (on which init receives the `Launch`), fd 2 /dev/null; its
// one argument is a blank title of `TITLE_ROOM` bytes; its environment holds
// only the two names below.

/// The bytes a shim is started with after its name, which it overwrites
/// with its job's title: room for `job-N` and an id.
pub const TITLE_ROOM: usize = 64;

/// The cgroup2 directory the shim joins before it forks the job's init (the
/// crew's cgroup for its helpers).
pub const SHIMS_CGROUP_ENV: &str = "TASKER_SHIMS_CGROUP";

/// The v1 cgroup directories (one a line) the job's init joins at once, so
/// the command inherits them (hybrid hosts; see the crew's `create_slot`).
pub const INIT_CGROUPS_ENV: &str = "TASKER_INIT_CGROUPS";

#[cfg(test)]
mod tests {
    use super::*;

    fn launch() -> Launch {
        Launch {
            argv: vec![b"/bin/echo".to_vec(), b"hi there".to_vec()],
            env: vec![b"PATH=/bin".to_vec()],
            cwd: b"/tmp".to_vec(),
            uid: 1000,
            gid: 1000,
            groups: vec![1000, 27],
            tty: true,
            host_network: true,
            v1_procs: 3,
            clone_into_cgroup: true,
        }
    }

    #[test]
    fn every_message_round_trips() {
        for l in [
            launch(),
            Launch {
                tty: false,
                ..launch()
            },
        ] {
            assert_eq!(Launch::decode(&l.encode()), Ok(l.clone()));
        }
        let to = [
            ToShim::Hello { min: 1, max: 3 },
            ToShim::Recorded,
            ToShim::Serve(Serve {
                job_id: b"0123".to_vec(),
                title: b"job-1 0123".to_vec(),
                record: b"{}".to_vec(),
                tty: true,
                output_limit: 64 << 20,
                drop_unit: 1 << 20,
            }),
            ToShim::Stdin(b"\0\xffbytes".to_vec()),
            ToShim::CloseStdin,
            ToShim::Resize { rows: 50, cols: 200 },
            ToShim::Terminate,
            ToShim::Kill,
        ];
        for m in to {
            assert_eq!(ToShim::decode(&m.encode()), Ok(m.clone()));
        }
        let from = [
            FromShim::StartFailed {
                reason: "no such file: /x".into(),
            },
            FromShim::StdinClosed {
                reason: "EPIPE".into(),
            },
            FromShim::Log {
                message: "hello".into(),
            },
            FromShim::Exited {
                status: Some(9),
                output_end: 123,
                output_error: None,
            },
            FromShim::Exited {
                status: None,
                output_end: 0,
                output_error: Some("disk full".into()),
            },
            FromShim::Welcome {
                version: PROTOCOL,
                record: b"{\"handle\":\"job-1\"}".to_vec(),
                stdin_open: true,
                output_end: 12,
            },
        ];
        for m in from {
            assert_eq!(FromShim::decode(&m.encode()), Ok(m.clone()));
        }
    }

    fn exit_record() -> ExitRecord {
        ExitRecord {
            status: Some(9),
            output_end: 1 << 40,
            output_error: Some("disk full".into()),
            ended_at_ns: 1_700_000_000_000_000_000,
            record: b"{}".to_vec(),
        }
    }

    #[test]
    fn exit_records_round_trip_and_refuse_what_is_not_one() {
        let rec = exit_record();
        let bytes = rec.encode();
        assert_eq!(ExitRecord::decode(&bytes), Ok(rec));
        for n in 0..bytes.len() {
            assert!(
                ExitRecord::decode(&bytes[..n]).is_err(),
                "prefix of {n} bytes accepted"
            );
        }
        assert!(ExitRecord::decode(b"TASKEXT9\0").is_err());
    }

    #[test]
    fn any_crew_can_read_the_version_a_shim_speaks() {
        let w = FromShim::Welcome {
            version: PROTOCOL,
            record: Vec::new(),
            stdin_open: true,
            output_end: 0,
        };
        assert_eq!(welcome_version(&w.encode()), Some(PROTOCOL));
        // A later version's welcome: its version is readable even though
        // the rest is not this build's to decode.
        let mut later = w.encode();
        later[1..5].copy_from_slice(&(PROTOCOL + 1).to_le_bytes());
        later.extend_from_slice(b"fields of the future");
        assert_eq!(welcome_version(&later), Some(PROTOCOL + 1));
        assert!(FromShim::decode(&later).is_err());
        assert_eq!(welcome_version(&[WELCOME, 1]), None);
    }

    #[test]
    fn long_texts_are_cut_to_fit_one_message() {
        let long = "é".repeat(10_000);
        let msg = FromShim::Log { message: long }.encode();
        assert!(msg.len() <= MAX_FROM_SHIM);
        let FromShim::Log { message } = FromShim::decode(&msg).unwrap() else {
            panic!("not a log")
        };
        assert!(message.chars().all(|c| c == 'é'), "cut inside a character");
    }

    #[test]
    fn truncated_or_garbage_input_is_an_error_not_a_panic() {
        let full = launch().encode();
        for n in 0..full.len() {
            assert!(
                Launch::decode(&full[..n]).is_err(),
                "prefix of {n} bytes accepted"
            );
        }
        assert!(Launch::decode(&[10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(ToShim::decode(&[1, 2]).is_err());
        assert!(FromShim::decode(&[200]).is_err());
        let mut trailing = FromShim::Log { message: "x".into() }.encode();
        trailing.push(0);
        assert!(FromShim::decode(&trailing).is_err());
    }
}
