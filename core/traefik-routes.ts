import fs from 'node:fs';
import path from 'node:path';

/** A Traefik HTTP route from a host name to one upstream URL. */
export type Route = {
  /** Router/service name and file name: lowercase letters, digits and dashes. */
  name: string;
  /** Host the router matches, e.g. "my-app.localhost". */
  host: string;
  /** Upstream the load balancer forwards to, e.g. "http://127.0.0.1:32768". */
  upstream: string;
};

const NAME = /^[a-z0-9]([a-z0-9-]{0,100}[a-z0-9])?$/;
const HOST = /^[a-z0-9.-]{1,253}$/;

/** Writes (or replaces) a route for Traefik's file provider. The write is atomic. */
export function writeRoute(routesDir: string, route: Route): string {
  if (!NAME.test(route.name)) throw new Error(`invalid route name: ${route.name}`);
  if (!HOST.test(route.host)) throw new Error(`invalid route host: ${route.host}`);
  const upstream = new URL(route.upstream);
  if (upstream.protocol !== 'http:') throw new Error(`upstream must be http: ${route.upstream}`);
  const yaml = [
    'http:',
    '  routers:',
    `    ${route.name}:`,
    `      rule: "Host(\`${route.host}\`)"`,
    '      entryPoints: [web]',
    `      service: ${route.name}`,
    '  services:',
    `    ${route.name}:`,
    '      loadBalancer:',
    '        servers:',
    `          - url: "${upstream.href}"`,
    '',
  ].join('\n');
  const file = routeFile(routesDir, route.name);
  const tmp = path.join(routesDir, `.${route.name}.${process.pid}.tmp`);
  fs.writeFileSync(tmp, yaml);
  fs.renameSync(tmp, file);
  return file;
}

/** Removes a route; a missing route is not an error. */
export function removeRoute(routesDir: string, name: string): void {
  if (!NAME.test(name)) throw new Error(`invalid route name: ${name}`);
  fs.rmSync(routeFile(routesDir, name), { force: true });
}

function routeFile(routesDir: string, name: string) {
  return path.join(routesDir, `${name}.yml`);
}
