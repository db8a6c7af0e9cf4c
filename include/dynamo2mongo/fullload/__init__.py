"""The full load (DESIGN §2 export, convert, import): a point-in-time export read, converted and imported."""
