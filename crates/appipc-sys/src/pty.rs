//! Pseudo-terminals and terminal modes, for the terminal relay of `appipc launch --wait`: a
//! confined app never gets an fd of the user's terminal; the CLI gives it a new pty it owns
//! and relays (as `ssh -t` and `systemd-run --pty` do), puts the user's terminal in raw mode
//! meanwhile and restores it after.
//!
//! Built on rustix's `pty` and `termios` (no raw calls but a `pre_exec` hook for tests).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::pty::OpenptFlags;
use rustix::termios::{OptionalActions, Termios, Winsize};

/// A new pseudo-terminal: the side this process keeps and the side the app gets.
#[derive(Debug)]
pub struct Pty {
    /// The controlling side (`/dev/ptmx`), kept by the relay.
    pub master: OwnedFd,
    /// The terminal side (`/dev/pts/N`), handed to the app; opened with `O_NOCTTY`, so it is
    /// not this process's controlling terminal.
    pub slave: OwnedFd,
}

/// Opens a new pty pair (`posix_openpt`, `grantpt`, `unlockpt`, then the slave through
/// `TIOCGPTPEER`, which needs no path lookup). Both ends are close-on-exec.
pub fn open() -> io::Result<Pty> {
    let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
    let master = rustix::pty::openpt(flags)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let slave = rustix::pty::ioctl_tiocgptpeer(&master, flags)?;
    Ok(Pty { master, slave })
}

/// Whether `fd` is a terminal.
pub fn is_terminal(fd: impl AsFd) -> bool {
    rustix::termios::isatty(fd)
}

/// The special characters compared by [`TerminalMode`]'s `==`.
const CODES: [rustix::termios::SpecialCodeIndex; 7] = {
    use rustix::termios::SpecialCodeIndex as I;
    [I::VINTR, I::VQUIT, I::VERASE, I::VKILL, I::VEOF, I::VMIN, I::VTIME]
};

/// A terminal's modes (`struct termios`), comparable (flags and the usual special characters).
#[derive(Clone)]
pub struct TerminalMode(Termios);

impl std::fmt::Debug for TerminalMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TerminalMode")
            .field("iflag", &self.0.input_modes)
            .field("oflag", &self.0.output_modes)
            .field("cflag", &self.0.control_modes)
            .field("lflag", &self.0.local_modes)
            .finish()
    }
}

impl PartialEq for TerminalMode {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (&self.0, &other.0);
        a.input_modes == b.input_modes
            && a.output_modes == b.output_modes
            && a.control_modes == b.control_modes
            && a.local_modes == b.local_modes
            && CODES.iter().all(|c| a.special_codes[*c] == b.special_codes[*c])
    }
}

impl TerminalMode {
    /// `tcgetattr`.
    pub fn get(fd: impl AsFd) -> io::Result<TerminalMode> {
        Ok(TerminalMode(rustix::termios::tcgetattr(fd)?))
    }

    /// `tcsetattr(TCSANOW)`.
    pub fn set(&self, fd: impl AsFd) -> io::Result<()> {
        Ok(rustix::termios::tcsetattr(fd, OptionalActions::Now, &self.0)?)
    }

    /// This mode made raw (`cfmakeraw`): no echo, no line editing, no signals from keys; the
    /// relay passes every byte to the app's pty, whose own modes then apply.
    pub fn raw(&self) -> TerminalMode {
        let mut t = self.0.clone();
        t.make_raw();
        TerminalMode(t)
    }

    /// This mode without echo and canonical input (what an app that reads keys sets).
    pub fn without_echo(&self) -> TerminalMode {
        use rustix::termios::LocalModes;
        let mut t = self.0.clone();
        t.local_modes.remove(LocalModes::ECHO | LocalModes::ICANON);
        TerminalMode(t)
    }

    /// Whether echo is on.
    pub fn echoes(&self) -> bool {
        self.0.local_modes.contains(rustix::termios::LocalModes::ECHO)
    }
}

/// A window size in characters (and pixels, usually 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowSize {
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
    /// Width in pixels.
    pub x_pixels: u16,
    /// Height in pixels.
    pub y_pixels: u16,
}

/// `TIOCGWINSZ`.
pub fn window_size(fd: impl AsFd) -> io::Result<WindowSize> {
    let w = rustix::termios::tcgetwinsize(fd)?;
    Ok(WindowSize { rows: w.ws_row, cols: w.ws_col, x_pixels: w.ws_xpixel, y_pixels: w.ws_ypixel })
}

/// `TIOCSWINSZ`: on a pty's master, the kernel then sends `SIGWINCH` to the foreground
/// process group of its terminal side.
pub fn set_window_size(fd: impl AsFd, size: WindowSize) -> io::Result<()> {
    let w = Winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: size.x_pixels,
        ws_ypixel: size.y_pixels,
    };
    Ok(rustix::termios::tcsetwinsize(fd, w)?)
}

/// The device number (`st_rdev`) of the file open at `fd` (for a terminal: which one).
pub fn device_of(fd: impl AsFd) -> io::Result<u64> {
    Ok(rustix::fs::fstat(fd)?.st_rdev)
}

/// Makes the child that `cmd` spawns the leader of a new session whose controlling terminal is
/// its fd 0, as a login shell's terminal is (for tests that run a program "in a terminal").
pub fn spawn_in_terminal(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let hook = || -> io::Result<()> {
        rustix::process::setsid()?;
        // SAFETY: fd 0 is the child's stdin, open for the call (std placed it before hooks
        // run); borrowing it does not close or move it.
        let stdin = unsafe { BorrowedFd::borrow_raw(0) };
        rustix::process::ioctl_tiocsctty(stdin)?;
        Ok(())
    };
    // SAFETY: the hook runs between fork and exec and makes two raw syscalls through rustix
    // (setsid, ioctl); it allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(hook);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pty_carries_bytes_modes_sizes_and_signals() {
        let p = open().unwrap();
        assert!(is_terminal(&p.slave) && is_terminal(&p.master));
        let mode = TerminalMode::get(&p.slave).unwrap();
        assert!(mode.echoes());
        mode.raw().set(&p.slave).unwrap();
        assert_ne!(TerminalMode::get(&p.slave).unwrap(), mode);
        mode.set(&p.slave).unwrap();
        assert_eq!(TerminalMode::get(&p.slave).unwrap(), mode);
        let size = WindowSize { rows: 33, cols: 77, x_pixels: 0, y_pixels: 0 };
        set_window_size(&p.master, size).unwrap();
        assert_eq!(window_size(&p.slave).unwrap(), size);
        rustix::io::write(&p.master, b"hi\n").unwrap();
        let mut buf = [0u8; 8];
        let n = rustix::io::read(&p.slave, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hi\n");
        assert_ne!(device_of(&p.slave).unwrap(), 0);

        // A program started in that terminal has it as its controlling terminal (/dev/tty).
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.args(["-c", "echo x > /dev/tty && echo has-ctty"]);
        cmd.stdin(p.slave.try_clone().unwrap()).stdout(p.slave.try_clone().unwrap());
        spawn_in_terminal(&mut cmd);
        let status = cmd.spawn().unwrap().wait().unwrap();
        assert!(status.success());
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains("has-ctty") {
            let n = rustix::io::read(&p.master, &mut buf).unwrap();
            seen.extend_from_slice(&buf[..n]);
        }
    }
}
