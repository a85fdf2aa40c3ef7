import type { SignInSettings } from '../../core/config.ts';
import { firebaseSignIn } from './firebase-sign-in.ts';
import { githubSignIn } from './github-sign-in.ts';
import type { SignInMethod } from './sign-in.ts';

/** The sign-in methods the configuration enables, besides the login code (always there). */
export function signInMethodsFor(settings: SignInSettings): SignInMethod[] {
  const methods: SignInMethod[] = [];
  if (settings.firebase) methods.push(firebaseSignIn(settings.firebase));
  if (settings.github) methods.push(githubSignIn(settings.github));
  return methods;
}
