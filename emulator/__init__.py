"""ith-emulator: pumps that behave like real ones, served over a pty or TCP."""
