import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';

export type Listening = { server: http.Server; port: number; close: () => Promise<void> };

/** Starts `app` on host:port; resolves once it listens. `close` ends keep-alive sockets too. */
export function listen(app: Express, host: string, port: number): Promise<Listening> {
  return new Promise((resolve, reject) => {
    const server = app.listen(port, host, (err?: Error) => {
      if (err) return reject(err);
      resolve({
        server,
        port: (server.address() as AddressInfo).port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
    server.once('error', reject);
  });
}
