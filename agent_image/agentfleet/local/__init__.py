"""Local mode: the embedded AWS emulator, deploying the synthesized app into it, the local fleet."""
