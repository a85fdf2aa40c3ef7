import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ociArchive, tar } from './oci-archive.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oci-archive-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Unpacks `archive` with GNU tar into a folder of its own (named `name`); returns the folder. */
function unpack(archive: Buffer, name: string): string {
  const out = path.join(dir, name);
  fs.mkdirSync(out);
  fs.writeFileSync(path.join(dir, `${name}.tar`), archive);
  execFileSync('tar', ['-xf', path.join(dir, `${name}.tar`), '-C', out]);
  return out;
}

describe('tar', () => {
  it('writes an archive GNU tar reads back: names, modes, contents', () => {
    const file = path.join(dir, 'a.tar');
    const big = Buffer.alloc(1500, 7);
    fs.writeFileSync(
      file,
      tar([
        { name: 'pause', data: Buffer.from('#!/bin/true\n'), mode: 0o755 },
        { name: 'blobs/sha256/abc', data: big },
      ]),
    );
    const listing = execFileSync('tar', ['-tvf', file]).toString().trim().split('\n');
    expect(listing[0]).toMatch(/^-rwxr-xr-x .* 12 .* pause$/);
    expect(listing[1]).toMatch(/^-rw-r--r-- .* 1500 .* blobs\/sha256\/abc$/);
    expect(execFileSync('tar', ['-xOf', file, 'blobs/sha256/abc'])).toEqual(big);
  });
});

describe('ociArchive', () => {
  it('lays out an OCI image whose index names the image and whose blobs match their digests', () => {
    const { archive, manifestDigest } = ociArchive({
      ref: 'localhost/test/pause:1',
      files: [{ name: 'pause', data: Buffer.from('binary'), mode: 0o755 }],
      entrypoint: ['/pause'],
      user: '65535:65535',
      architecture: 'amd64',
    });
    const out = unpack(archive, 'layout');
    const index = JSON.parse(fs.readFileSync(path.join(out, 'index.json'), 'utf8'));
    expect(index.manifests[0].digest).toBe(manifestDigest);
    expect(index.manifests[0].annotations['io.containerd.image.name']).toBe('localhost/test/pause:1');
    // Every blob's name is the sha256 of its contents.
    for (const blob of fs.readdirSync(path.join(out, 'blobs/sha256'))) {
      const sum = execFileSync('sha256sum', [path.join(out, 'blobs/sha256', blob)])
        .toString()
        .split(' ')[0];
      expect(sum).toBe(blob);
    }
    const manifest = JSON.parse(
      fs.readFileSync(path.join(out, 'blobs/sha256', manifestDigest.slice(7)), 'utf8'),
    );
    const config = JSON.parse(
      fs.readFileSync(path.join(out, 'blobs/sha256', manifest.config.digest.slice(7)), 'utf8'),
    );
    expect(config.config).toEqual({ Entrypoint: ['/pause'], User: '65535:65535' });
    expect(config.rootfs.diff_ids).toEqual([manifest.layers[0].digest]);
    // The same input gives the same image.
    expect(
      ociArchive({
        ref: 'localhost/test/pause:1',
        files: [{ name: 'pause', data: Buffer.from('binary'), mode: 0o755 }],
        entrypoint: ['/pause'],
        user: '65535:65535',
        architecture: 'amd64',
      }).manifestDigest,
    ).toBe(manifestDigest);
  });

  it("puts the image's environment in its config when given one", () => {
    const { archive } = ociArchive({
      ref: 'localhost/test/env:1',
      files: [{ name: 'usr/bin/tool', data: Buffer.from('binary'), mode: 0o755 }],
      entrypoint: ['/usr/bin/tool'],
      env: ['PATH=/usr/bin:/bin'],
      architecture: 'amd64',
    });
    const out = unpack(archive, 'env-layout');
    const index = JSON.parse(fs.readFileSync(path.join(out, 'index.json'), 'utf8'));
    const blob = (digest: string) =>
      JSON.parse(fs.readFileSync(path.join(out, 'blobs/sha256', digest.slice(7)), 'utf8'));
    const config = blob(blob(index.manifests[0].digest).config.digest);
    expect(config.config).toEqual({ Entrypoint: ['/usr/bin/tool'], Env: ['PATH=/usr/bin:/bin'] });
  });
});
