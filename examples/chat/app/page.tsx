import { redirect } from "next/navigation";
import { LoginForm } from "@/components/LoginForm";
import { listUsers } from "@/lib/db";
import { currentUser } from "@/lib/session";

export const dynamic = "force-dynamic";

/** The login: pick who you are (the example has no passwords; authentication is not its point). */
export default async function Home() {
  if (await currentUser({ touch: false })) redirect("/chat");
  const users = listUsers().map(({ id, name }) => ({ id, name }));
  return (
    <main className="login">
      <h1>Chat</h1>
      <p>A private chat on Reverb Pusher. Log in as:</p>
      <LoginForm users={users} />
    </main>
  );
}
