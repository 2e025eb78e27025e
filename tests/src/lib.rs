//! Harness for end-to-end tests: start the real `berth` binary on a free port.
