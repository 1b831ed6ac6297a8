//! Where everything is on screen: one pure function of the state and the
//! size, used by the views to draw and by `update` to know what a mouse
//! click hit and how big a page is.

use ratatui::layout::Rect;

use super::app::App;

/// Below this the dashboard shows a "too small" notice instead.
pub const MIN_COLS: u16 = 40;
pub const MIN_ROWS: u16 = 10;

/// "[stop] [attach]" at the right end of each job row.
pub const STOP: &str = "[stop]";
pub const ATTACH: &str = "[attach]";
pub const BUTTONS_WIDTH: u16 = 16;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Areas {
    pub too_small: bool,
    /// One line: each crew's connection.
    pub strip: Rect,
    /// The job list's block, and inside it the header line and the rows.
    pub jobs: Rect,
    pub jobs_header: Rect,
    pub job_rows: Rect,
    /// The terminal pane's block and its inside (zero when not attached).
    pub terminal: Rect,
    pub screen: Rect,
    /// The status / command line, and the key hints.
    pub status: Rect,
    pub hints: Rect,
}

pub fn areas(app: &App) -> Areas {
    let (cols, rows) = app.size;
    if cols < MIN_COLS || rows < MIN_ROWS {
        return Areas {
            too_small: true,
            ..Areas::default()
        };
    }
    let strip = Rect::new(0, 0, cols, 1);
    let status = Rect::new(0, rows - 2, cols, 1);
    let hints = Rect::new(0, rows - 1, cols, 1);
    let body = Rect::new(0, 1, cols, rows - 3);
    let (jobs, terminal) = if app.attached.is_some() {
        // The list gets 40% of the body, at least 5 lines (3 rows), and in
        // a small window at least 4 (one row); the terminal the rest, at
        // least 3 lines (one of screen).
        let jobs_h = (body.height * 2 / 5)
            .max(5)
            .min(body.height.saturating_sub(3))
            .max(4);
        (
            Rect::new(0, body.y, cols, jobs_h),
            Rect::new(0, body.y + jobs_h, cols, body.height - jobs_h),
        )
    } else {
        (body, Rect::default())
    };
    let inner = |r: Rect| {
        if r.width < 2 || r.height < 2 {
            Rect::default()
        } else {
            Rect::new(r.x + 1, r.y + 1, r.width - 2, r.height - 2)
        }
    };
    let jobs_inner = inner(jobs);
    let jobs_header = Rect::new(
        jobs_inner.x,
        jobs_inner.y,
        jobs_inner.width,
        1.min(jobs_inner.height),
    );
    let job_rows = Rect::new(
        jobs_inner.x,
        jobs_inner.y + 1,
        jobs_inner.width,
        jobs_inner.height.saturating_sub(1),
    );
    Areas {
        too_small: false,
        strip,
        jobs,
        jobs_header,
        job_rows,
        terminal,
        screen: inner(terminal),
        status,
        hints,
    }
}

/// The `[stop]` and `[attach]` buttons of a job row.
pub fn buttons(row: Rect) -> (Rect, Rect) {
    let right = row.x + row.width;
    let attach_w = ATTACH.len() as u16;
    let stop_w = STOP.len() as u16;
    let attach = Rect::new(right.saturating_sub(attach_w + 1), row.y, attach_w, 1);
    let stop = Rect::new(attach.x.saturating_sub(stop_w + 1), row.y, stop_w, 1);
    (stop, attach)
}

/// Rows of jobs that fit on screen.
pub fn page(app: &App) -> usize {
    usize::from(areas(app).job_rows.height).max(1)
}

pub fn contains(r: Rect, col: u16, row: u16) -> bool {
    col >= r.x && col < r.x + r.width && row >= r.y && row < r.y + r.height
}
