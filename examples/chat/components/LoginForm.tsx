"use client";

import { useRouter } from "next/navigation";
import { useState } from "react";
import { api } from "@/lib/api";

export function LoginForm({ users }: { users: { id: string; name: string }[] }) {
  const router = useRouter();
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const logIn = async (id: string) => {
    setBusy(true);
    setError(null);
    try {
      await api.logIn(id);
      router.push("/chat");
      router.refresh();
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
      setBusy(false);
    }
  };
  return (
    <>
      <ul className="users">
        {users.map((u) => (
          <li key={u.id}>
            <button type="button" data-testid={`login-${u.id}`} disabled={busy} onClick={() => logIn(u.id)}>
              {u.name}
            </button>
          </li>
        ))}
      </ul>
      {error && <p role="alert" className="error">Could not log in: {error}</p>}
    </>
  );
}
