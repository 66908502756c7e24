// Seedable randomness for the fault controls, so that a test or a soak run that names its seed
// sees the same drops, delays and faults each time it sends the same sequence of calls.

export const DEFAULT_SEED = 1;

/** mulberry32: a small 32-bit generator; returns a function yielding floats in [0, 1). */
export function seededRandom(seed = DEFAULT_SEED) {
    let state = seed >>> 0;
    return () => {
        state = (state + 0x6d2b79f5) >>> 0;
        let t = state;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}
