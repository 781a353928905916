import { notFound } from "next/navigation";
import { Conversation } from "@/components/Conversation";
import { USER_ID_PATTERN } from "@/lib/channels";
import { findUser } from "@/lib/db";
import { currentUser } from "@/lib/session";

export default async function ChatWith({ params }: { params: Promise<{ peer: string }> }) {
  const { peer } = await params;
  const me = await currentUser({ touch: false });
  const other = USER_ID_PATTERN.test(peer) && peer !== me?.id ? findUser(peer) : null;
  if (!other) notFound();
  // Keyed by the peer, so switching conversations leaves one channel and joins the other.
  return <Conversation key={other.id} peer={{ id: other.id, name: other.name, lastActive: other.lastActive }} />;
}
