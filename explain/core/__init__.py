"""The library's runtime: result types and errors, targets, the method registry, hooks that live
for one call, and the one layer lookup. Nothing here knows a method."""
