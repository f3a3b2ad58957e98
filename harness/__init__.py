"""What tests and benchmarks both drive vlm-tui with: a real terminal (tmux), tiny images."""
