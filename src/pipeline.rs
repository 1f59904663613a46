//! One run: the stages wired together, and its report.
