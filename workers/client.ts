import { Client, Connection } from '@temporalio/client';

/** A Temporal client for starting and querying workflows. `close()` releases the connection. */
export async function connectTemporal(address: string, namespace: string) {
  const connection = await Connection.connect({ address });
  return { client: new Client({ connection, namespace }), connection, close: () => connection.close() };
}
