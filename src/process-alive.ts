/**
 * Whether a process with this pid exists. EPERM means it exists but belongs to someone else,
 * which for pid files and locks still means "taken".
 */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
