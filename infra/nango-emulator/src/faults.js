// Injected faults of the emulated Nango API: the next N calls of a route (or of every route)
// answer 429 / 5xx, hang, answer a malformed body or reset the connection. Checked after
// authentication, where Nango's own rate limiter and handler errors happen.

export const ANY_ROUTE = '*';

export class ApiFaults {
    constructor(random) {
        this.timers = new Set();
        this.reset(random);
    }

    reset(random) {
        this.random = random;
        this.rules = [];
        this.nextId = 1;
    }

    /** `rule` was checked by the control: {route, count?, probability, page?, status?, retryAfter?, hangMs?, malformed?, reset?}. */
    add(rule) {
        const stored = { id: this.nextId++, ...rule, remaining: rule.count ?? null, hits: 0 };
        delete stored.count;
        this.rules.push(stored);
        return stored;
    }

    clear() {
        this.rules = [];
    }

    /** The fault this call meets, if any; uses it up. `routeKey` is "METHOD /path/:param". */
    take(routeKey, query) {
        for (const rule of this.rules) {
            if (rule.remaining === 0) continue;
            if (rule.route !== ANY_ROUTE && rule.route !== routeKey) continue;
            if (rule.page !== undefined && Number(query.page ?? 0) !== rule.page) continue;
            if (rule.probability < 1 && this.random() >= rule.probability) continue;
            if (rule.remaining !== null) rule.remaining -= 1;
            rule.hits += 1;
            return rule;
        }
        return null;
    }

    /** A wait that close() can cut short, so a hanging call never keeps the process alive. */
    sleep(ms) {
        return new Promise((resolve) => {
            const waiting = { resolve };
            waiting.timer = setTimeout(() => {
                this.timers.delete(waiting);
                resolve();
            }, ms);
            this.timers.add(waiting);
        });
    }

    close() {
        for (const waiting of this.timers) {
            clearTimeout(waiting.timer);
            waiting.resolve();
        }
        this.timers.clear();
    }
}
