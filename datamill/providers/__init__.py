"""Provider adapters: one small class per API family, all behind `base.Provider`."""
