"""What the user asks for: settings, presets, the model's family and needs, the axolotl config."""
