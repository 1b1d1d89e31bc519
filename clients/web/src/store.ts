// The device's persistent state: one IndexedDB object store of structured-clone values, so
// CryptoKeys are kept as they are (non-extractable private keys never become bytes).
export class Store {
  private constructor(private readonly db: IDBDatabase) {}

  static open(name = "chatd"): Promise<Store> {
    return new Promise((resolve, reject) => {
      const req = indexedDB.open(name, 1);
      req.onupgradeneeded = () => req.result.createObjectStore("kv");
      req.onsuccess = () => resolve(new Store(req.result));
      req.onerror = () => reject(req.error);
    });
  }

  private run<T>(mode: IDBTransactionMode, f: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> {
    return new Promise((resolve, reject) => {
      const tx = this.db.transaction("kv", mode, { durability: "strict" } as IDBTransactionOptions);
      const req = f(tx.objectStore("kv"));
      tx.oncomplete = () => resolve(req.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  }

  get<T>(key: string): Promise<T | undefined> {
    return this.run("readonly", (s) => s.get(key) as IDBRequest<T | undefined>);
  }

  put(key: string, value: unknown): Promise<unknown> {
    return this.run("readwrite", (s) => s.put(value, key));
  }

  /** Several writes in one transaction: all or none (a ratchet step and what it carried). */
  putMany(entries: [string, unknown][]): Promise<void> {
    return new Promise((resolve, reject) => {
      const tx = this.db.transaction("kv", "readwrite", { durability: "strict" } as IDBTransactionOptions);
      const s = tx.objectStore("kv");
      for (const [k, v] of entries) s.put(v, k);
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  }

  del(key: string): Promise<unknown> {
    return this.run("readwrite", (s) => s.delete(key));
  }

  keys(prefix: string): Promise<string[]> {
    return this.run("readonly", (s) => s.getAllKeys(IDBKeyRange.bound(prefix, prefix + "\uffff")) as IDBRequest<string[]>);
  }
}
