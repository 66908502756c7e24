// Counts of the calls Nango's API received, by route and by answer, so that a script can measure
// how many Nango calls the backend makes (GET /_emulator/requests). Control routes, /health and
// the Connect UI page are not Nango API calls and are not counted.

/** The key of a call that matched no route. */
export const UNMATCHED = 'unmatched';

export class RequestCounts {
    constructor() {
        this.clear();
    }

    clear() {
        this.generation = (this.generation ?? 0) + 1;
        this.routes = new Map();
        this.lookups = { requests: 0, answers: {} };
        this.total = 0;
    }

    /**
     * Counts one call as it arrives, and its answer once given: `routeKey` as the fault routes
     * name it ("GET /connections/:connectionId"), or UNMATCHED; the answer is the HTTP status, or
     * "reset" when the socket was destroyed first. GET /connections with `connectionId=` (the exact
     * lookup that confirms a webhook or an absence) is also counted on its own, as
     * `connectionLookups`.
     */
    track(res, routeKey, { lookup = false } = {}) {
        let entry = this.routes.get(routeKey);
        if (!entry) {
            entry = { requests: 0, answers: {} };
            this.routes.set(routeKey, entry);
        }
        const counted = lookup ? [entry, this.lookups] : [entry];
        this.total += 1;
        for (const c of counted) c.requests += 1;
        const generation = this.generation;
        let answered = false;
        const answer = (value) => {
            // Once per call; and not into counts cleared while it was in flight.
            if (answered || generation !== this.generation) return;
            answered = true;
            for (const c of counted) c.answers[value] = (c.answers[value] ?? 0) + 1;
        };
        res.once('finish', () => answer(String(res.statusCode)));
        res.once('close', () => answer(res.writableFinished ? String(res.statusCode) : 'reset'));
    }

    summary() {
        return {
            total: this.total,
            routes: Object.fromEntries([...this.routes.entries()].sort(([a], [b]) => a.localeCompare(b))),
            connectionLookups: this.lookups
        };
    }
}
