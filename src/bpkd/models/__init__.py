"""The paper's architectures, built from mmseg's own config files."""
