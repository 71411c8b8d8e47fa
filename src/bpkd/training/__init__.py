"""Training with mmengine's Runner: config assembly, DVCLive logging, export."""
