//! The dashboard's whole state. `update` is the only writer; the views
//! read it by reference.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, SystemTime};

use tasker_proto::v1 as pb;

use super::action::{CrewIx, Notice, SessionId};
use super::term::Emulator;

#[derive(Debug)]
pub struct App {
    pub crews: Vec<CrewState>,
    /// Every job of every crew, in crew then creation order.
    pub jobs: BTreeMap<JobKey, JobEntry>,
    /// Job id → its key.
    pub index: HashMap<String, JobKey>,
    /// The selected line of the job list: a job, or a batch's line.
    pub selected: Option<RowKey>,
    /// Batches whose members are listed under their line (the others
    /// show the line alone).
    pub open_batches: HashSet<String>,
    /// A batch's outputs, gathered for its overlay.
    pub gathered: Option<Gathered>,
    /// Archived jobs are listed too (`A`).
    pub show_archived: bool,
    /// The log view's state, while it is open.
    pub log: Option<super::logview::LogView>,
    /// The audit trail of the job in the detail overlay.
    pub trail: Option<Trail>,
    /// First row of the (filtered) job list on screen.
    pub offset: usize,
    pub filter: String,
    pub mode: Mode,
    pub focus: Focus,
    pub overlay: Option<Overlay>,
    pub attached: Option<Attachment>,
    /// The `:` command line or the `/` filter being typed.
    pub line: LineEdit,
    pub history: Vec<String>,
    /// Where Up/Down is in the history while editing.
    pub history_pos: Option<usize>,
    pub completion: Option<Completion>,
    pub notice: Option<Notice>,
    pub notice_at: Option<SystemTime>,
    /// The whole terminal (cols, rows).
    pub size: (u16, u16),
    pub now: SystemTime,
    pub next_session: SessionId,
    pub quitting: bool,
    pub order: Order,
    /// Jobs came, went or changed since the selection was last checked
    /// (`update::settle`: once per frame in the loop, at once otherwise).
    pub unsettled: bool,
    /// The event loop takes a burst of events before it settles and draws.
    pub batching: bool,
    /// The last action changed nothing on screen: no frame for it.
    pub quiet: bool,
    /// The ids of the jobs the last frame drew (a batch line's members
    /// too), written by the view.
    pub on_screen: std::cell::RefCell<HashSet<String>>,
    /// The config's named jobs, for `:start --preset NAME`.
    pub presets: std::collections::BTreeMap<String, crate::config::Preset>,
    /// The list's lines as last made (`App::list`); dropped by `update`
    /// whenever what it is made of may have changed.
    pub list_cache: std::cell::RefCell<Option<std::rc::Rc<ListCache>>>,
}

/// The job list's lines and counts, made once and kept until jobs, the
/// filter, the order or an open batch change: a frame then draws only the
/// lines on screen, and a key costs no walk over 10,000 jobs.
#[derive(Debug, Default)]
pub struct ListCache {
    pub rows: Vec<RowKey>,
    /// Each batch line's members, in the list's order.
    pub members: HashMap<String, Vec<JobKey>>,
    /// Visible jobs, and of them running.
    pub total: usize,
    pub running: usize,
    /// The most members of a batch line.
    pub widest_batch: usize,
}

/// A batch's members by how they stand (`App::batch_counts`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchCounts {
    pub running: usize,
    pub ok: usize,
    pub failed: usize,
    pub unknown: usize,
}

/// What a line of the job list is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RowKey {
    /// A batch's line: its members below it while it is open.
    Batch(String),
    Job(JobKey),
}

impl RowKey {
    pub fn job(&self) -> Option<&JobKey> {
        match self {
            Self::Job(k) => Some(k),
            Self::Batch(_) => None,
        }
    }
}

/// A line of the job list.
#[derive(Debug)]
pub enum Row<'a> {
    /// A batch with two or more jobs in the list, in the list's order.
    Batch {
        id: &'a str,
        members: Vec<(&'a JobKey, &'a JobEntry)>,
        open: bool,
    },
    /// `member`: listed under its batch's line.
    Job {
        key: &'a JobKey,
        entry: &'a JobEntry,
        member: bool,
    },
}

impl Row<'_> {
    pub fn key(&self) -> RowKey {
        match self {
            Row::Batch { id, .. } => RowKey::Batch((*id).to_owned()),
            Row::Job { key, .. } => RowKey::Job((*key).clone()),
        }
    }

    pub fn is(&self, key: &RowKey) -> bool {
        match (self, key) {
            (Row::Batch { id, .. }, RowKey::Batch(b)) => id == b,
            (Row::Job { key, .. }, RowKey::Job(k)) => *key == k,
            _ => false,
        }
    }
}

/// A job's audit trail, as the detail overlay shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trail {
    pub job: String,
    /// Lines for people, or why they could not be read; None while asked.
    pub lines: Option<Result<Vec<String>, String>>,
}

/// A batch's outputs gathered: identical ones once, under their crews.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gathered {
    pub batch: String,
    /// None until the crews answer.
    pub groups: Option<Vec<GatheredGroup>>,
    /// A member changed since: gather again (at the next tick).
    pub stale: bool,
    /// A gathering is under way.
    pub asking: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatheredGroup {
    /// `web[1-3] (3) exit 0`.
    pub header: String,
    /// Every member ended with 0; one ended otherwise.
    pub ok: bool,
    pub failed: bool,
    /// The output, filtered for the screen, a line each.
    pub lines: Vec<String>,
    /// Its first member, for ⏎.
    pub first: JobKey,
}

/// How the job list is ordered: `:sort COLUMN [desc]`, `:group crew|owner|batch|none`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Order {
    pub by: SortBy,
    pub descending: bool,
    /// Jobs of a crew, an owner or a batch together, groups in order.
    pub group: Option<SortBy>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortBy {
    /// Crew, then creation: the list's own order.
    #[default]
    Crew,
    Job,
    State,
    Owner,
    Batch,
    Age,
    Cpu,
    Mem,
    Command,
}

impl SortBy {
    pub const ALL: [(&'static str, SortBy); 9] = [
        ("crew", SortBy::Crew),
        ("job", SortBy::Job),
        ("state", SortBy::State),
        ("owner", SortBy::Owner),
        ("batch", SortBy::Batch),
        ("age", SortBy::Age),
        ("cpu", SortBy::Cpu),
        ("mem", SortBy::Mem),
        ("command", SortBy::Command),
    ];

    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == word).map(|(_, s)| *s)
    }

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, s)| *s == self)
            .map_or("crew", |(n, _)| n)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum SortKey {
    Number(u64),
    Text(String),
}

/// A sort key in its direction (every row of a sort has the same variant).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Directed {
    Up(SortKey),
    Down(std::cmp::Reverse<SortKey>),
}

#[derive(Debug)]
pub struct CrewState {
    pub name: String,
    pub addr: String,
    /// Its groups (`:start @GROUP -- CMD`).
    pub groups: Vec<String>,
    pub link: Link,
    /// Who we are there (identity, role), once connected.
    pub me: Option<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    Connecting {
        since: SystemTime,
    },
    Connected {
        since: SystemTime,
    },
    /// Not answering; retrying.
    Reconnecting {
        since: SystemTime,
        why: String,
        retry_at: SystemTime,
    },
    /// Discovery no longer finds it: not shown, not asked.
    Gone,
    /// Answered no (certificate, permission); still retrying, slowly.
    Refused {
        since: SystemTime,
        why: String,
        retry_at: SystemTime,
    },
}

impl Link {
    pub fn is_up(&self) -> bool {
        matches!(self, Self::Connected { .. })
    }

    pub fn is_gone(&self) -> bool {
        matches!(self, Self::Gone)
    }
}

impl App {
    /// The crews still there (discovery may have dropped some; their
    /// slots stay, so that a crew's index never changes).
    pub fn live_crews(&self) -> impl Iterator<Item = (CrewIx, &CrewState)> {
        self.crews.iter().enumerate().filter(|(_, c)| !c.link.is_gone())
    }

    /// The crew of this name that is still there.
    pub fn crew_named(&self, name: &str) -> Option<CrewIx> {
        self.live_crews().find(|(_, c)| c.name == name).map(|(ix, _)| ix)
    }
}

/// Orders jobs by crew, then by handle number (creation order).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobKey {
    pub crew: CrewIx,
    pub seq: u64,
    pub id: String,
}

impl JobKey {
    pub fn of(crew: CrewIx, job: &pb::Job) -> Self {
        let seq = job
            .handle
            .strip_prefix("job-")
            .and_then(|n| n.parse().ok())
            .unwrap_or(u64::MAX);
        Self {
            crew,
            seq,
            id: job.id.clone(),
        }
    }
}

#[derive(Debug)]
pub struct JobEntry {
    pub job: pb::Job,
    pub usage: Option<pb::Usage>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Typing a `:` command.
    Command,
    /// Typing a `/` filter.
    Filter,
    /// Keys go to the attached job.
    Input,
    /// A y/n question before a stop.
    Confirm(Pending),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub crew: CrewIx,
    pub job: String,
    pub label: String,
    pub action: Asked,
}

/// What a `y` at the confirm prompt does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asked {
    Stop,
    /// Stop every running member of the batch `Pending::job`.
    StopBatch,
    /// Start typing into the attached job (another user's).
    Type,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Focus {
    Jobs,
    Terminal,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Overlay {
    /// Scrolled this many lines.
    Help(u16),
    Crews,
    /// A job's details: spec, limits, outcome, totals, owner.
    Detail(JobKey),
    /// A batch's outputs gathered (`App::gathered`), scrolled this many lines.
    Gathered(u16),
    /// A job's stored output, read-only (`App::log`).
    Log,
}

/// The job shown in the terminal pane.
#[derive(Debug)]
pub struct Attachment {
    pub session: SessionId,
    pub crew: CrewIx,
    pub job: String,
    /// `crew/job-N`.
    pub label: String,
    pub tty: bool,
    /// Known once the crew answers.
    pub writable: Option<bool>,
    pub term: Emulator,
    /// The job's end, once it ended: "exit 0", "killed by signal 9"...
    pub ended: Option<String>,
    /// Why the stream closed early, if it did.
    pub lost: Option<String>,
    pub dropped: u64,
    /// The pty size last sent to the job.
    pub sent_size: Option<(u16, u16)>,
    /// The job is the caller's own, or they said yes to typing into
    /// another user's: keys may go to it.
    pub consented: bool,
}

/// A line being edited.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LineEdit {
    pub text: String,
    /// Cursor, in chars.
    pub cursor: usize,
}

impl LineEdit {
    pub fn set(&mut self, text: &str) {
        self.text = text.to_owned();
        self.cursor = text.chars().count();
    }

    pub fn clear(&mut self) {
        self.set("");
    }

    fn byte_at(&self, char_ix: usize) -> usize {
        self.text
            .char_indices()
            .nth(char_ix)
            .map_or(self.text.len(), |(i, _)| i)
    }

    pub fn insert(&mut self, s: &str) {
        let at = self.byte_at(self.cursor);
        self.text.insert_str(at, s);
        self.cursor += s.chars().count();
    }

    pub fn backspace(&mut self) {
        if self.cursor > 0 {
            let at = self.byte_at(self.cursor - 1);
            self.text.remove(at);
            self.cursor -= 1;
        }
    }

    pub fn delete(&mut self) {
        if self.cursor < self.text.chars().count() {
            let at = self.byte_at(self.cursor);
            self.text.remove(at);
        }
    }

    pub fn left(&mut self) {
        self.cursor = self.cursor.saturating_sub(1);
    }

    pub fn right(&mut self) {
        self.cursor = (self.cursor + 1).min(self.text.chars().count());
    }

    pub fn home(&mut self) {
        self.cursor = 0;
    }

    pub fn end(&mut self) {
        self.cursor = self.text.chars().count();
    }

    /// Ctrl-W: the word before the cursor.
    pub fn delete_word(&mut self) {
        let chars: Vec<char> = self.text.chars().collect();
        let mut i = self.cursor;
        while i > 0 && chars[i - 1] == ' ' {
            i -= 1;
        }
        while i > 0 && chars[i - 1] != ' ' {
            i -= 1;
        }
        let (from, to) = (self.byte_at(i), self.byte_at(self.cursor));
        self.text.replace_range(from..to, "");
        self.cursor = i;
    }
}

/// Tab completion in progress: the word being completed and its choices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The line up to the completed word.
    pub prefix: String,
    pub choices: Vec<String>,
    pub next: usize,
}

impl App {
    pub fn new(crews: Vec<(String, String)>, size: (u16, u16), now: SystemTime) -> Self {
        Self {
            crews: crews
                .into_iter()
                .map(|(name, addr)| CrewState {
                    name,
                    addr,
                    groups: Vec::new(),
                    link: Link::Connecting { since: now },
                    me: None,
                })
                .collect(),
            jobs: BTreeMap::new(),
            index: HashMap::new(),
            selected: None,
            open_batches: HashSet::new(),
            gathered: None,
            log: None,
            show_archived: false,
            trail: None,
            offset: 0,
            filter: String::new(),
            mode: Mode::Normal,
            focus: Focus::Jobs,
            overlay: None,
            attached: None,
            line: LineEdit::default(),
            history: Vec::new(),
            history_pos: None,
            completion: None,
            notice: None,
            notice_at: None,
            size,
            now,
            next_session: 1,
            quitting: false,
            order: Order::default(),
            unsettled: false,
            batching: false,
            quiet: false,
            on_screen: std::cell::RefCell::default(),
            list_cache: std::cell::RefCell::default(),
            presets: std::collections::BTreeMap::new(),
        }
    }

    /// The jobs the list shows: not archived (unless `A` shows them), matching the filter, in the
    /// order asked for (`:group`, then `:sort`; ties in crew and creation
    /// order).
    pub fn visible(&self) -> Vec<(&JobKey, &JobEntry)> {
        let needle = self.filter.to_lowercase();
        let mut rows: Vec<(&JobKey, &JobEntry)> = self
            .jobs
            .iter()
            .filter(|(_, e)| self.show_archived || !e.job.archived)
            .filter(|(k, e)| needle.is_empty() || self.matches(k, e, &needle))
            .collect();
        if self.order.group.is_some() || self.order.by != SortBy::Crew {
            let group = self.order.group;
            let by = self.order.by;
            let descending = self.order.descending;
            // Each row's key made once; the sort is stable, so rows with
            // equal keys keep crew and creation order.
            rows.sort_by_cached_key(|(k, e)| {
                let within = self.sort_key(by, k, e);
                let within = if descending {
                    Directed::Down(std::cmp::Reverse(within))
                } else {
                    Directed::Up(within)
                };
                (group.map(|g| self.sort_key(g, k, e)), within)
            });
        }
        rows
    }

    /// The list's lines: the visible jobs, a batch's together under its
    /// line (where its first member would be) when two or more of them
    /// are visible, and listed there only while the batch is open (or a
    /// filter is typed: what it matches is never hidden).
    pub fn rows(&self) -> Vec<Row<'_>> {
        self.rows_from(self.visible())
    }

    /// `rows` of jobs already made visible (`visible`).
    pub fn rows_from<'a>(&'a self, visible: Vec<(&'a JobKey, &'a JobEntry)>) -> Vec<Row<'a>> {
        let mut batches: HashMap<&str, Vec<(&JobKey, &JobEntry)>> = HashMap::new();
        for (k, e) in &visible {
            if !e.job.batch.is_empty() {
                batches.entry(e.job.batch.as_str()).or_default().push((k, e));
            }
        }
        let mut rows = Vec::with_capacity(visible.len());
        for (key, entry) in visible {
            let b = entry.job.batch.as_str();
            let alone = b.is_empty() || batches.get(b).is_some_and(|m| m.len() < 2);
            if alone {
                rows.push(Row::Job {
                    key,
                    entry,
                    member: false,
                });
                continue;
            }
            // Already listed under its batch's line.
            let Some(members) = batches.remove(b) else {
                continue;
            };
            let open = self.batch_open(b);
            if open {
                rows.push(Row::Batch {
                    id: b,
                    members: members.clone(),
                    open,
                });
                rows.extend(members.into_iter().map(|(key, entry)| Row::Job {
                    key,
                    entry,
                    member: true,
                }));
            } else {
                rows.push(Row::Batch { id: b, members, open });
            }
        }
        rows
    }

    /// The list as it stands (made now if it changed since last asked).
    pub fn list(&self) -> std::rc::Rc<ListCache> {
        if let Some(c) = self.list_cache.borrow().as_ref() {
            return std::rc::Rc::clone(c);
        }
        let visible = self.visible();
        let total = visible.len();
        let running = visible.iter().filter(|(_, e)| e.job.outcome.is_none()).count();
        let mut cache = ListCache {
            total,
            running,
            ..ListCache::default()
        };
        for r in self.rows_from(visible) {
            if let Row::Batch { id, members, .. } = &r {
                cache.widest_batch = cache.widest_batch.max(members.len());
                cache.members.insert(
                    (*id).to_owned(),
                    members.iter().map(|(k, _)| (*k).clone()).collect(),
                );
            }
            cache.rows.push(r.key());
        }
        let cache = std::rc::Rc::new(cache);
        *self.list_cache.borrow_mut() = Some(std::rc::Rc::clone(&cache));
        cache
    }

    /// What the list is made of may have changed: made again when next asked.
    pub fn list_changed(&self) {
        self.list_cache.borrow_mut().take();
    }

    /// One line of the list, from its key.
    pub fn row(&self, key: &RowKey) -> Option<Row<'_>> {
        match key {
            RowKey::Job(k) => {
                let (key, entry) = self.jobs.get_key_value(k)?;
                let member =
                    !entry.job.batch.is_empty() && self.list().members.contains_key(&entry.job.batch);
                Some(Row::Job { key, entry, member })
            }
            RowKey::Batch(b) => {
                let list = self.list();
                let keys = list.members.get(b)?;
                let members: Vec<(&JobKey, &JobEntry)> =
                    keys.iter().filter_map(|k| self.jobs.get_key_value(k)).collect();
                let id = members.first().map(|(_, e)| e.job.batch.as_str())?;
                Some(Row::Batch {
                    id,
                    members,
                    open: self.batch_open(b),
                })
            }
        }
    }

    pub fn batch_open(&self, batch: &str) -> bool {
        !self.filter.is_empty() || self.open_batches.contains(batch)
    }

    /// The selected job (not a batch's line).
    pub fn selected_job(&self) -> Option<&JobKey> {
        self.selected.as_ref().and_then(RowKey::job)
    }

    /// How the members of `batch` stand, as far as this dashboard knows:
    /// an unfinished job of a crew that is not answering is unknown.
    pub fn batch_counts(&self, batch: &str) -> BatchCounts {
        self.counts(self.jobs.iter().filter(|(_, e)| e.job.batch == batch))
    }

    /// How these jobs stand (`batch_counts`).
    pub fn counts<'a>(&self, jobs: impl IntoIterator<Item = (&'a JobKey, &'a JobEntry)>) -> BatchCounts {
        let mut c = BatchCounts::default();
        for (k, e) in jobs {
            match &e.job.outcome {
                None if self.crews.get(k.crew).is_some_and(|c| c.link.is_up()) => c.running += 1,
                None => c.unknown += 1,
                Some(_) if crate::present::exit_code(&e.job) == 0 => c.ok += 1,
                Some(_) => c.failed += 1,
            }
        }
        c
    }

    fn sort_key(&self, by: SortBy, key: &JobKey, e: &JobEntry) -> SortKey {
        let j = &e.job;
        match by {
            SortBy::Crew => SortKey::Text(self.crews.get(key.crew).map_or(String::new(), |c| c.name.clone())),
            SortBy::Job => SortKey::Number(key.seq),
            SortBy::State => SortKey::Text(crate::present::state_word(j)),
            SortBy::Owner => SortKey::Text(j.owner.clone()),
            SortBy::Batch => SortKey::Text(j.batch.clone()),
            // Oldest first (created earliest).
            SortBy::Age => SortKey::Number(j.created_at.as_ref().map_or(0, |t| t.seconds.max(0) as u64)),
            SortBy::Cpu => SortKey::Number(e.usage.as_ref().map_or(0, |u| (u.cpu_cores * 1000.0) as u64)),
            SortBy::Mem => SortKey::Number(e.usage.as_ref().map_or(0, |u| u.memory_bytes)),
            SortBy::Command => SortKey::Text(j.argv.join(" ")),
        }
    }

    fn matches(&self, key: &JobKey, e: &JobEntry, needle: &str) -> bool {
        let j = &e.job;
        let crew = self.crews.get(key.crew).map_or("", |c| c.name.as_str());
        [crew, &j.handle, &j.name, &j.owner, &j.id]
            .iter()
            .any(|f| f.to_lowercase().contains(needle))
            || j.argv.iter().any(|a| a.to_lowercase().contains(needle))
            || crate::present::state_word(j).contains(needle)
    }

    /// `crew/job-N` of a job.
    pub fn label(&self, key: &JobKey) -> String {
        let crew = self.crews.get(key.crew).map_or("?", |c| c.name.as_str());
        let handle = self.jobs.get(key).map_or("?", |e| e.job.handle.as_str());
        format!("{crew}/{handle}")
    }

    pub fn selected_entry(&self) -> Option<(&JobKey, &JobEntry)> {
        let key = self.selected_job()?;
        self.jobs.get_key_value(key)
    }

    pub fn since(&self, t: SystemTime) -> Duration {
        self.now.duration_since(t).unwrap_or_default()
    }
}
