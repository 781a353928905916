import { redirect } from "next/navigation";
import type { ReactNode } from "react";
import { ChatShell } from "@/components/ChatShell";
import { publicPusherConfig } from "@/lib/config";
import { listUsers } from "@/lib/db";
import { currentUser } from "@/lib/session";

export const dynamic = "force-dynamic";

export default async function ChatLayout({ children }: { children: ReactNode }) {
  const me = await currentUser();
  if (!me) redirect("/");
  return (
    <ChatShell
      me={{ id: me.id, name: me.name, lastActive: me.lastActive }}
      config={publicPusherConfig()}
      users={listUsers()}
      notifications={me.notifications}
    >
      {children}
    </ChatShell>
  );
}
