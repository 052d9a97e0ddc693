"""taletune's pipeline components: one folder per stage, plus `common/`."""
